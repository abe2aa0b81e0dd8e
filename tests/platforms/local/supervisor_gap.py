"""How long the public address stops answering when a process behind it is killed, measured under load.

`measure_supervisor_gap(platform)` SIGKILLs the local supervisor of a platform that serves a release
and returns what the load saw: the longest stretch without a successful answer around the kill,
the requests that failed, and how long until a supervisor answered again (relaunched by the proxy
process's watchdog). `measure_gap(url, kill)` does the same for any front and any kill (bench
peers). Used by the tests, `bench/supervisor_gap.py` and `bench/recovery.py`.
"""

from __future__ import annotations

import http.client
import itertools
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.platforms.local import LocalPlatform, read_status

__all__ = ["GapMeasurement", "Load", "measure_gap", "measure_supervisor_gap"]


@dataclass(frozen=True, slots=True)
class GapMeasurement:
    gap_s: float
    """The longest time without a successful answer, from the last one before the kill on."""
    failed: int
    """Requests sent after the kill that failed (refused, reset, timed out, or not 200)."""
    answered: int
    """Requests answered with 200 after the kill."""
    back_s: float | None = None
    """Until the killed process's role was filled again (a supervisor answering); None if not in time."""


@dataclass(slots=True)
class Load:
    """Threads sending GETs to `host:port` back to back, half on fresh connections, half kept alive."""

    host: str
    port: int
    threads: int = 4
    path: str = "/version"
    results: list[tuple[float, float, bool]] = field(default_factory=list)
    """(sent, done, ok) per request, monotonic seconds."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index % 2 == 1,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=10)

    def successes_since(self, moment: float) -> int:
        with self._lock:
            return sum(1 for sent, _, ok in self.results if ok and sent >= moment)

    def _run(self, keep_alive: bool) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            sent = time.monotonic()
            ok = False
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
                conn.request("GET", self.path)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
                if not keep_alive or response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
            with self._lock:
                self.results.append((sent, time.monotonic(), ok))
            if not ok:
                time.sleep(0.002)  # a refused connect returns at once: do not spin the CPU


def measure_gap(
    url: str,
    kill: Callable[[], None],
    *,
    back: Callable[[], bool] = lambda: True,
    settle_s: float = 1.0,
    deadline_s: float = 15.0,
    threads: int = 4,
) -> GapMeasurement:
    """Run load on `url`, call `kill()`, keep the load on until `back()` holds and `settle_s` passed."""
    host, _, port = url.removeprefix("http://").rstrip("/").rpartition(":")
    with Load(host, int(port), threads=threads) as load:
        began = time.monotonic()
        while load.successes_since(began) < 20:
            if time.monotonic() - began > deadline_s:
                raise AssertionError(f"{url} does not answer under load")
            time.sleep(0.01)
        killed_at = time.monotonic()
        kill()
        back_s: float | None = None
        while time.monotonic() - killed_at < deadline_s:
            if back_s is None and back():
                back_s = time.monotonic() - killed_at
            if back_s is not None and time.monotonic() - killed_at >= settle_s:
                break
            time.sleep(0.01)
        ended = time.monotonic()
    with load._lock:
        results = list(load.results)
    answered_at = sorted(done for _, done, ok in results if ok)
    before = [t for t in answered_at if t <= killed_at]
    after = [t for t in answered_at if t > killed_at]
    marks = [before[-1] if before else killed_at, *after, ended]
    gap = max(b - a for a, b in itertools.pairwise(marks))
    failed = sum(1 for sent, _, ok in results if not ok and sent >= killed_at)
    return GapMeasurement(round(gap, 4), failed, len(after), None if back_s is None else round(back_s, 4))


def measure_supervisor_gap(
    platform: LocalPlatform, *, settle_s: float = 1.0, deadline_s: float = 15.0
) -> GapMeasurement:
    """SIGKILL the supervisor of `platform` (which must serve a release) under load; see `measure_gap`.

    `back_s` is until a new supervisor (relaunched by the proxy process) answers its control socket.
    """
    status = read_status(platform.paths.root)
    if status is None:
        raise AssertionError(f"no local supervisor answers in {platform.paths.root}: deploy something first")
    old = status.pid

    def back() -> bool:
        now = read_status(platform.paths.root)
        return now is not None and now.pid != old

    return measure_gap(
        platform.live_url(), lambda: os.kill(old, signal.SIGKILL), back=back, settle_s=settle_s, deadline_s=deadline_s
    )
