"""Counters as a data plane would report them, built from request latencies (for the canary and meter tests)."""

from __future__ import annotations

from orchestrator.platforms.traffic import LATENCY_BOUNDS, ReleaseTraffic, bucket_of

__all__ = ["traffic"]


def traffic(latencies_s: list[float], errors: int = 0) -> ReleaseTraffic:
    buckets = [0] * (len(LATENCY_BOUNDS) + 1)
    for seconds in latencies_s:
        buckets[bucket_of(seconds)] += 1
    n = len(latencies_s)
    return ReleaseTraffic(n, (0, n - errors, 0, 0, errors), 0, LATENCY_BOUNDS, tuple(buckets))
