"""What a supervisor says about itself: its releases, their replicas, the proxy process, the retired.

Typed once here so the CLI, the platform and the tests read one shape from `status` answers and
from a state file left by a supervisor that is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ProxyStatus", "ReleaseStatus", "ReplicaStatus", "RetiredStatus", "SupervisorStatus"]


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    index: int
    port: int
    pid: int
    alive: bool
    log: str
    health: dict[str, Any] | None = None
    """The last probe: {"ok": bool, "at": epoch seconds, "detail": str}; None before the first."""


@dataclass(frozen=True, slots=True)
class ReleaseStatus:
    version: str
    port: int
    """Replica 0's port, as `pid` and `log` are its pid and log."""
    pid: int
    alive: bool
    """Every replica runs."""
    weight: int
    inflight: int
    image: str | None
    started_at: float
    log: str
    replicas: tuple[ReplicaStatus, ...] = ()
    release_dir: str | None = None
    """The snapshot it runs from (None: recorded before snapshots)."""
    tree_digest: str | None = None
    gated: tuple[tuple[str, str, str], ...] = ()
    """(section, path, digest) of the gated artifacts its snapshot covers."""
    not_restarted: str | None = None
    """Why its dead replicas are not restarted (snapshot missing or changed), if so."""

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ReleaseStatus:
        fields: dict[str, Any] = {k: doc.get(k) for k in cls.__dataclass_fields__ if k not in ("replicas", "gated")}
        # A supervisor from before replicas ran one process per release and did not list it.
        listed = doc.get("replicas") or [{"index": 0, **{k: doc[k] for k in ("port", "pid", "alive", "log")}}]
        replicas = tuple(ReplicaStatus(**{k: r.get(k) for k in _REPLICA_FIELDS}) for r in listed)
        gated = tuple((str(a), str(b), str(c)) for a, b, c in doc.get("gated", ()))
        return cls(**fields, replicas=replicas, gated=gated)


_REPLICA_FIELDS = tuple(ReplicaStatus.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class RetiredStatus:
    """A retired release: its snapshot is gone, its digests are remembered."""

    version: str
    tree_digest: str
    image: str | None
    retired_at: float


@dataclass(frozen=True, slots=True)
class ProxyStatus:
    """The proxy process that serves the public address, as it answers itself."""

    up: bool
    pid: int | None
    weights: dict[str, int]
    """The routing table it applies now (the supervisor's `weights` once `in_sync`)."""
    in_sync: bool


@dataclass(frozen=True, slots=True)
class SupervisorStatus:
    pid: int
    listen: str
    live: str | None
    weights: dict[str, int]
    releases: tuple[ReleaseStatus, ...]
    """Newest first."""
    proxy: ProxyStatus | None = None
    """None from a supervisor that served the proxy itself."""
    drain_seconds: float | None = None
    retired: tuple[RetiredStatus, ...] = ()
    """Newest first."""

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> SupervisorStatus:
        releases = tuple(ReleaseStatus.from_dict(item) for item in doc["releases"])
        proxy = doc.get("proxy")
        return cls(
            pid=int(doc["pid"]),
            listen=str(doc["listen"]),
            live=doc.get("live"),
            weights={str(k): int(v) for k, v in doc["weights"].items()},
            releases=releases,
            proxy=ProxyStatus(**{k: proxy[k] for k in ProxyStatus.__dataclass_fields__}) if proxy else None,
            drain_seconds=doc.get("drain_seconds"),
            retired=tuple(RetiredStatus(**{k: r[k] for k in _RETIRED_FIELDS}) for r in doc.get("retired", ())),
        )


_RETIRED_FIELDS = tuple(RetiredStatus.__dataclass_fields__)
