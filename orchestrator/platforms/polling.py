"""Waiting for a platform to finish something: polls spaced by a growing backoff, under a deadline.

Shared by the DigitalOcean and Kubernetes adapters, which poll different things (a deployment's
phase, a rollout's status) the same way. No busy polling: the gap between looks starts at `initial`
seconds and grows to `maximum`, since early phases are short and builds and rollouts long. The
deadline is always finite, and no sleep runs past it. Given `what`, a wait says where it stands in
the job log while it lasts (progress.py).

Each adapter subclasses `Backoff` with defaults suited to what it waits for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from orchestrator.progress import Reporter

__all__ = ["Backoff", "BoundedWait"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Gaps between polls: `initial` seconds, then each `factor` times the last, at most `maximum`."""

    initial: float
    factor: float
    maximum: float

    def delays(self) -> Iterator[float]:
        delay = self.initial
        while True:
            yield delay
            delay = min(self.maximum, delay * self.factor)


class BoundedWait:
    """One wait, `deadline_seconds` long from its creation, sleeping `backoff`'s delays between polls."""

    def __init__(
        self,
        deadline_seconds: float,
        backoff: Backoff,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        what: str | None = None,
    ) -> None:
        self._deadline = deadline_seconds
        self._progress = Reporter(what, deadline_seconds) if what else None
        self._delays = backoff.delays()
        self._clock = clock
        self._sleep = sleep
        self._start = clock()

    def elapsed(self) -> float:
        """Seconds since the wait began."""
        return self._clock() - self._start

    def sleep_until_next_poll(self, elapsed: float) -> bool:
        """Sleep the next backoff delay, cut at the deadline, and return True; return False without
        sleeping when the deadline has passed (`elapsed`: this poll's `elapsed()`)."""
        remaining = self._deadline - elapsed
        if remaining <= 0:
            return False
        if self._progress is not None:
            self._progress.tick(elapsed)
        self._sleep(min(next(self._delays), remaining))
        return True
