"""The proxy's per-release counters: requests, answers by status class, a latency histogram.

`record` runs on the data plane's thread once per request (a comparison or a bisect, and three list
increments); `reading` runs on the control thread and copies the lists, so it sees values true a moment
ago, which is all a window of seconds needs. Counters only grow for as long as the proxy process lives.
"""

from __future__ import annotations

from bisect import bisect_left

from orchestrator.platforms.traffic import LATENCY_BOUNDS, ReleaseTraffic

__all__ = ["Meter"]

_FIRST_BOUND = LATENCY_BOUNDS[0]


class Meter:
    __slots__ = ("_buckets", "_statuses", "failed", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.failed = 0
        self._statuses = [0, 0, 0, 0, 0]
        self._buckets = [0] * (len(LATENCY_BOUNDS) + 1)

    def record(self, status: int, seconds: float) -> None:
        """One request ended: `status` is the answer's (0: it got none), `seconds` its time in the proxy."""
        self.requests += 1
        if 100 <= status < 600:
            self._statuses[status // 100 - 1] += 1
        else:
            self.failed += 1
        # Most requests fall in the first bucket: one comparison spares them the bisect.
        self._buckets[0 if seconds <= _FIRST_BOUND else bisect_left(LATENCY_BOUNDS, seconds)] += 1

    def reading(self) -> ReleaseTraffic:
        statuses = tuple(self._statuses)
        return ReleaseTraffic(self.requests, statuses, self.failed, LATENCY_BOUNDS, tuple(self._buckets))  # type: ignore[arg-type]
