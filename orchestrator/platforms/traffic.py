"""Traffic at a platform's data plane: what it measured per release, and keeping clients sticky.

These are platform capabilities (`platforms.base` re-exports the two protocols): `TrafficMeter`, a
data plane that counts requests, status classes and a latency histogram per release (local;
Kubernetes with Prometheus through `canary.prometheus`), and `StickyRouter`, a router that keeps each
client on the release it first got (local), by the config's `canary.sticky` rule (`Stickiness`).
The canary analysis reads the counters; no platform imports the canary.

Every source (our proxy, haproxy's stats, a Prometheus query) reports counters that only grow, as
Prometheus counters do; a window is the difference of two readings (`window`), so canary and baseline
are always compared over the same stretch of time. A counter that went down was reset (haproxy
deletes and re-adds a server, a proxy process was restarted): the later reading is the whole window.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from orchestrator.contract.canary import Stickiness

__all__ = [
    "LATENCY_BOUNDS",
    "ReleaseTraffic",
    "StickyRouter",
    "TrafficMeter",
    "TrafficSample",
    "bucket_of",
    "window",
]

LATENCY_BOUNDS: tuple[float, ...] = tuple(round(0.0005 * 1.25**i, 6) for i in range(54))
"""Upper bounds (seconds) of the proxy's latency buckets: 0.5 ms to about 85 s, each 25% wider than
the one before, so a p95 read from them is within 12.5% of the true one; one more bucket is +Inf."""


def bucket_of(seconds: float, bounds: tuple[float, ...] = LATENCY_BOUNDS) -> int:
    """The index of the bucket `seconds` falls in (le semantics: a value equal to a bound is in it)."""
    return bisect_left(bounds, seconds)


@dataclass(frozen=True, slots=True)
class ReleaseTraffic:
    """Counters for one release since its data plane began counting (or over a window)."""

    requests: int = 0
    """Every request that reached the release (answered or not)."""
    statuses: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    """Answers by class: 1xx, 2xx, 3xx, 4xx, 5xx."""
    failed: int = 0
    """Requests that got no answer at all (cut, aborted): counted as errors beside the 5xx."""
    bounds: tuple[float, ...] = LATENCY_BOUNDS
    buckets: tuple[int, ...] | None = None
    """Requests per latency bucket (len(bounds) + 1, the last +Inf); None: the source has no histogram."""

    @property
    def errors(self) -> int:
        return self.statuses[4] + self.failed

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def quantile(self, q: float) -> float | None:
        """The q-quantile of latency in seconds, interpolated inside its bucket (as histogram_quantile)."""
        if self.buckets is None:
            return None
        total = sum(self.buckets)
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for index, count in enumerate(self.buckets):
            if count and seen + count >= rank:
                lower = self.bounds[index - 1] if index > 0 else 0.0
                upper = self.bounds[index] if index < len(self.bounds) else self.bounds[-1]
                return lower + (upper - lower) * (rank - seen) / count
            seen += count
        return self.bounds[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "statuses": list(self.statuses),
            "failed": self.failed,
            "bounds": None if self.bounds == LATENCY_BOUNDS else list(self.bounds),
            "buckets": None if self.buckets is None else list(self.buckets),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ReleaseTraffic:
        statuses = tuple(int(n) for n in doc["statuses"])
        if len(statuses) != 5:
            raise ValueError(f"statuses should list 5 classes, not {len(statuses)}")
        bounds = tuple(float(b) for b in doc["bounds"]) if doc.get("bounds") else LATENCY_BOUNDS
        buckets = tuple(int(n) for n in doc["buckets"]) if doc.get("buckets") is not None else None
        if buckets is not None and len(buckets) != len(bounds) + 1:
            raise ValueError(f"{len(buckets)} buckets for {len(bounds)} bounds: expected one more than the bounds")
        return cls(int(doc["requests"]), statuses, int(doc["failed"]), bounds, buckets)


@dataclass(frozen=True, slots=True)
class TrafficSample:
    """One reading of every release's counters, by version."""

    releases: Mapping[str, ReleaseTraffic] = field(default_factory=dict)
    source: str = "python"
    """Who counted: `python` (our proxy), `haproxy`, `prometheus`."""

    def get(self, version: str) -> ReleaseTraffic:
        return self.releases.get(version) or ReleaseTraffic()

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "releases": {v: t.to_dict() for v, t in self.releases.items()}}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> TrafficSample:
        releases = {str(v): ReleaseTraffic.from_dict(t) for v, t in doc["releases"].items()}
        return cls(releases, str(doc.get("source", "python")))


@runtime_checkable
class TrafficMeter(Protocol):
    """A platform whose data plane counts requests per release (local; Kubernetes with Prometheus)."""

    def traffic(self) -> TrafficSample:
        """The counters now. Read-only. Raises DeployError when the data plane does not answer."""


@runtime_checkable
class StickyRouter(Protocol):
    """A router that can keep each client on the release it first got (local)."""

    def route_sticky(self, weights: Mapping[str, int], sticky: Stickiness) -> None:
        """`route`, with clients pinned by `sticky`'s cookie or header while the measured share of
        requests is held to `weights`. Idempotent. Raises DeployError."""


def window(before: TrafficSample, after: TrafficSample) -> TrafficSample:
    """What happened between two readings, per release present in `after`."""
    return TrafficSample({v: _difference(before.get(v), t) for v, t in after.releases.items()}, after.source)


def _difference(before: ReleaseTraffic, after: ReleaseTraffic) -> ReleaseTraffic:
    if after.requests < before.requests or after.bounds != before.bounds:
        return after
    buckets = after.buckets
    if buckets is not None and before.buckets is not None:
        buckets = tuple(max(0, a - b) for a, b in zip(buckets, before.buckets, strict=True))
    statuses = tuple(max(0, a - b) for a, b in zip(after.statuses, before.statuses, strict=True))
    return ReleaseTraffic(
        after.requests - before.requests,
        statuses,  # type: ignore[arg-type]
        max(0, after.failed - before.failed),
        after.bounds,
        buckets,
    )
