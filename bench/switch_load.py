"""Load for `bench/switch.py`: a client that never retries and records every answer, the switch
samples drawn from its records, wrk runs, and CPU time from /proc.

The client keeps `connections` keep-alive connections busy, one request at a time each (asyncio on
uvloop when installed, in a process of its own so it shares no interpreter with what it measures). For
every answer it records the connection, the completion time and the release that served it (the
static backends answer their version); any other outcome (a refused, reset or closed connection, a
status other than 200) is one failed request, and the connection is opened again.

A switch sample is one connection's view of one switch, from the moment the switch was requested
(so it includes the route call) to the moment that connection's traffic moved: when it sent its
first request answered by the new release after which none came from the old one, before the next
switch. That includes waiting for the request in flight at the switch to finish on the old release
(each connection has one request at a time), but not the new request's own service time, which
measures throughput, not switching (at 200 connections it is 200 / req/s, tens of ms for any proxy
on this machine). The same sample to the completion of that answer is reported too ("answered").
Samples are attributed to switches by completion time, so a request still in flight when the next
switch starts counts for the switch it completed in; a connection with no new answer before the
next switch is charged the whole interval.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoadResult", "SwitchSamples", "Wrk", "cpu_seconds", "percentile", "run_load", "switch_samples"]

WRK = shutil.which("wrk") or "/usr/bin/wrk"
VARIED_SCRIPT = Path(__file__).with_name("varied_requests.lua")
_REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


@dataclass(frozen=True)
class LoadResult:
    records: list[tuple[int, float, float, bytes]]
    """(connection, send time, completion time (both time.monotonic), version answered)."""
    failed: int
    seconds: float


class _Conn(asyncio.Protocol):
    def __init__(self, index: int, out: list[tuple[int, float, float, bytes]], lost: asyncio.Future[None]) -> None:
        self.index, self.out, self.lost = index, out, lost
        self.buffer = b""
        self.sent = 0.0
        self.failed = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.sent = time.monotonic()
        transport.write(_REQUEST)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end]
            match = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
            if match is None or not head.startswith(b"HTTP/1.1 200"):
                self.failed += 1
                self.buffer = b""
                assert self.transport is not None
                self.transport.close()
                return
            end = head_end + 4 + int(match.group(1))
            if len(self.buffer) < end:
                return
            body, self.buffer = self.buffer[head_end + 4 : end], self.buffer[end:]
            now = time.monotonic()
            self.out.append((self.index, self.sent, now, body.strip()))
            assert self.transport is not None
            self.sent = now
            self.transport.write(_REQUEST)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


async def _drive(port: int, connections: int, seconds: float) -> LoadResult:
    loop = asyncio.get_running_loop()
    records: list[tuple[int, float, float, bytes]] = []
    failed = 0
    stop_at = time.monotonic() + seconds

    async def one(index: int) -> None:
        nonlocal failed
        while time.monotonic() < stop_at:
            conn = _Conn(index, records, loop.create_future())
            lost = conn.lost
            try:
                transport, _ = await loop.create_connection(lambda: conn, "127.0.0.1", port)  # noqa: B023
            except OSError:
                failed += 1
                await asyncio.sleep(0.01)
                continue
            remaining = stop_at - time.monotonic()
            done, _ = await asyncio.wait([lost], timeout=max(remaining, 0))
            failed += conn.failed
            if done and time.monotonic() < stop_at:
                failed += 1 if not conn.failed else 0  # closed under an outstanding request
            transport.abort()

    began = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(connections)))
    return LoadResult(records, failed, time.monotonic() - began)


def _child(port: int, connections: int, seconds: float, queue: multiprocessing.Queue[LoadResult]) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    queue.put(asyncio.run(_drive(port, connections, seconds)))


def run_load(
    port: int, connections: int, seconds: float
) -> tuple[multiprocessing.Process, multiprocessing.Queue[LoadResult]]:
    """Start the client in a process of its own; `.get()` on the queue gives the LoadResult."""
    queue: multiprocessing.Queue[LoadResult] = multiprocessing.get_context("fork").Queue()
    proc = multiprocessing.get_context("fork").Process(target=_child, args=(port, connections, seconds, queue))
    proc.start()
    return proc, queue


@dataclass(frozen=True)
class SwitchSamples:
    moved: list[float]
    """Milliseconds from each switch to each connection's first request sent to the new release."""
    answered: list[float]
    """The same, to that request's answer."""
    effect: list[float]
    """Per switch: to the first request any connection sent that the new release answered, after which
    that connection got no old answer (when the switch had taken effect, at the latest)."""
    unmoved: int
    """Samples charged the whole interval: no answer from the new release before the next switch (on a
    loaded machine, mostly a connection that got no answer at all for that long)."""


def switch_samples(
    records: list[tuple[int, float, float, bytes]], switches: list[tuple[float, bytes]]
) -> SwitchSamples:
    """One sample per (connection, switch): see the module docstring. `switches` are (time, new version)."""
    by_conn: dict[int, list[tuple[float, float, bytes]]] = {}
    for conn, sent, done, version in records:
        by_conn.setdefault(conn, []).append((sent, done, version))
    moved: list[float] = []
    answered: list[float] = []
    effect: list[float] = []
    unmoved = 0
    bounds = [*(at for at, _ in switches[1:]), float("inf")]
    for (start, new), end in zip(switches, bounds, strict=True):
        first = len(moved)
        for answers in by_conn.values():
            window = [(sent, done, v) for sent, done, v in answers if start <= done < end]
            if not window:
                continue
            last_old = max((i for i, (_, _, v) in enumerate(window) if v != new), default=-1)
            if last_old == len(window) - 1:
                charged = ((end if end != float("inf") else window[-1][1]) - start) * 1000
                unmoved += 1
                moved.append(charged)
                answered.append(charged)
            else:
                sent, done, _ = window[last_old + 1]
                moved.append(max(0.0, sent - start) * 1000)
                answered.append((done - start) * 1000)
        if len(moved) > first:
            effect.append(min(moved[first:]))
    return SwitchSamples(moved, answered, effect, unmoved)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[min(998, max(0, round(q * 10) - 1))]


@dataclass(frozen=True)
class Wrk:
    requests: int
    seconds: float
    failed: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @classmethod
    def run(cls, port: int, connections: int, seconds: float, *, varied: bool = False) -> Wrk:
        """`varied`: every request's target differs (`/?n=1`, `/?n=2`, ...), so no two heads are alike."""
        argv = [WRK, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s"]
        argv += ["-s", str(VARIED_SCRIPT)] if varied else []
        argv.append(f"http://127.0.0.1:{port}/")
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
        found = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
        if found is None:
            raise RuntimeError(f"wrk printed no totals:\n{out}")
        scale = {"s": 1.0, "ms": 0.001, "m": 60.0}[found.group(3)]
        errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
        errors += int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
        return cls(int(found.group(1)), float(found.group(2)) * scale, errors)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Direct children of `pid` (haproxy's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found
