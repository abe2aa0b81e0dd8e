"""Long waits said aloud: what the run waits for, how long so far, and until when.

A build on DigitalOcean, a Kubernetes rollout, a held lock or a slow health check can each take
minutes; silence for that long reads as a hang. A polling loop holds a `Reporter` and calls `tick` at
each poll: after a few seconds it says what it waits for, the elapsed time and the deadline, then again
at most every 10 s. The lines go to the run's log, so the job log and the summary's Log section show
them. In a terminal, `live_status` also keeps a spinner on stderr that counts the seconds of the
current phase; elsewhere (Actions, a pipe) only plain lines are written.

The run binds its log once (`bound`), so code deep in an adapter can say what it waits for without a
log handed down every call chain. Unbound (a library caller, a unit test), a `Reporter` is silent.
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

__all__ = ["Reporter", "Sink", "bound", "describe", "interactive", "live_status"]

QUIET_SECONDS = 5.0
"""A wait shorter than this says nothing."""
EVERY_SECONDS = 10.0
"""At most one line per wait this often."""


class Sink(Protocol):
    def info(self, message: str) -> None: ...


_bound: contextvars.ContextVar[Sink | None] = contextvars.ContextVar("progress_sink", default=None)


@contextmanager
def bound(sink: Sink) -> Iterator[None]:
    """Inside the block, every `Reporter` made in this context reports to `sink` (the run's log)."""
    token = _bound.set(sink)
    try:
        yield
    finally:
        _bound.reset(token)


class Reporter:
    """For a loop that wakes up regularly: `tick(elapsed)` at each poll says where the wait stands
    when a line is due (after `quiet_seconds`, then every `every_seconds`)."""

    def __init__(
        self,
        what: str,
        deadline_seconds: float | None = None,
        *,
        sink: Sink | None = None,
        quiet_seconds: float = QUIET_SECONDS,
        every_seconds: float = EVERY_SECONDS,
    ) -> None:
        self.what = what
        self.deadline_seconds = deadline_seconds
        self._sink = sink if sink is not None else _bound.get()
        self._next = quiet_seconds
        self._every = every_seconds

    def tick(self, elapsed: float) -> None:
        if self._sink is None or elapsed < self._next:
            return
        self._sink.info(describe(self.what, elapsed, self.deadline_seconds))
        self._next = elapsed + self._every


def describe(what: str, elapsed: float, deadline_seconds: float | None) -> str:
    until = f", deadline {deadline_seconds:.0f} s" if deadline_seconds is not None else ""
    return f"waiting for {what}: {elapsed:.0f} s so far{until}"


def interactive() -> bool:
    """A person watching a terminal, not the Actions job log or a pipe."""
    return os.environ.get("GITHUB_ACTIONS") != "true" and sys.stderr.isatty()


@contextmanager
def live_status(title: str, *, clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """A spinner on stderr naming `title` and counting its seconds; gone (transient) when it ends.

    rich swaps stderr for a proxy while it draws, so log lines (console_logging writes to whatever
    stderr is at the time) print above the spinner instead of through it.
    """
    from rich.console import Console
    from rich.status import Status

    start = clock()
    status = Status(title, console=Console(stderr=True), spinner="dots")
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(1.0):
            status.update(f"{title} ({clock() - start:.0f} s)")

    ticker = threading.Thread(target=tick, name="live-status", daemon=True)
    with status:
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()
