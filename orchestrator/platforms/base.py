"""What a platform is: a small core every platform has, and the capabilities some add.

Strategies, the rollback and the preview flow see only these protocols. Adapters return contract
dataclasses (never raw SDK objects) and translate SDK errors into `DeployError` naming the operation.

- `Platform` (every platform): read what is live and kept, start a release, roll back to one.
- `TrafficRouter`: the platform moves traffic on our command (`local`, `kubernetes`); `start` then
  brings a release up without traffic. A platform without it cuts over by itself once a release
  passes its own health gate (`digitalocean`): `start` returns once the release is live.
- `Retirement`: releases hold resources we stop (`local`, `kubernetes`).
- `NativeRollback`: the platform's rollback is a transaction to commit or revert (`digitalocean`).
- `Previews`: the platform can run a target per pull request and remove it again.
- `PinsArtifacts`: the platform captures a release's files itself and holds them to the gate's digests.
- `DeletesApps`: other apps than the one deployed can be deleted by id or name (`digitalocean`, mode delete).
- `TrafficMeter`: the data plane counts requests per release, for the canary analysis (`local`).
- `StickyRouter`: a `TrafficRouter` that can keep each client on the release it first got (`local`).

The last two, with the counters and the stickiness rule they take, live in `platforms.traffic` and
are re-exported here: a platform implements them without importing anything of the canary.

Which strategies a platform can run follows from these (`orchestrator.strategies.support`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from orchestrator.artifacts import ArtifactDigests
from orchestrator.platforms.traffic import StickyRouter, TrafficMeter

__all__ = [
    "DeletedApp",
    "DeletesApps",
    "NativeRollback",
    "PinsArtifacts",
    "Platform",
    "Previews",
    "Release",
    "Retirement",
    "StickyRouter",
    "TrafficMeter",
    "TrafficRouter",
    "TrafficShape",
    "answers_on_a_url",
]


@dataclass(frozen=True, slots=True)
class Release:
    """One version of the application as the platform keeps it."""

    version: str
    url: str | None = None
    """Where this release answers directly, bypassing the public route (None: only via `live_url`)."""
    image: str | None = None
    ref: str | None = None
    """The platform's own id for it (DigitalOcean deployment id, Kubernetes Deployment name, ...)."""


class Platform(Protocol):
    """The core every platform shares."""

    name: str

    def live(self) -> Release | None:
        """The release receiving all traffic now, or None before the first deploy. Read-only."""

    def live_url(self) -> str:
        """The public URL users reach. Read-only."""

    def releases(self) -> list[Release]:
        """Releases kept for instant rollback, newest first, the live one included. Read-only."""

    def start(self, version: str, image: str | None) -> Release:
        """Bring `version` up. Idempotent per version.

        On a `TrafficRouter` the release gets no traffic yet; otherwise this returns once the platform
        has made it live (or raises DeployError, the old release still serving).
        """

    def rollback(self, to: Release) -> None:
        """Make `to` the live release again, as fast as the platform can. Raises DeployError."""


@dataclass(frozen=True, slots=True)
class TrafficShape:
    """How finely a router can split traffic, read before the rollout is planned."""

    replicas: int = 1
    """Replicas a release runs: a rolling rollout moves one replica's share at a time."""
    exact: bool = True
    """Weights are honoured to the percent; False: only in steps of 100/replicas percent."""

    def effective(self, weight: int) -> int:
        """The share `weight` really gets (round half up to a whole replica, at least one while above 0)."""
        if self.exact or weight <= 0 or weight >= 100:
            return weight
        pods = max(1, (self.replicas * weight + 50) // 100)
        return min(100, round(100 * pods / self.replicas))


@runtime_checkable
class TrafficRouter(Protocol):
    def traffic_shape(self) -> TrafficShape:
        """How finely traffic can be split now. Read-only."""

    def start_sized(self, version: str, image: str | None, weight: int) -> Release:
        """`start`, sized for the first share of traffic (`weight` percent) the release will get."""

    def route(self, weights: Mapping[str, int]) -> None:
        """Send new requests to releases by weight (percent, summing to 100). Idempotent.

        Requests already in flight finish where they started. Raises DeployError.
        """


@runtime_checkable
class Retirement(Protocol):
    def retire(self, keep: int) -> list[str]:
        """Stop releases without traffic beyond the newest `keep` previous ones; return their versions."""

    def stop(self, version: str) -> None:
        """Stop one release that has no traffic (an aborted one). Idempotent."""


@runtime_checkable
class NativeRollback(Protocol):
    def confirm_rollback(self, healthy: bool) -> None:
        """After `rollback` and the re-check of the old release: keep it (healthy) or undo the rollback.
        Raises DeployError."""


@runtime_checkable
class PinsArtifacts(Protocol):
    """A platform that captures a release's files itself (local): it holds its copies to the gate's digests."""

    def pin_artifacts(self, version: str, digests: ArtifactDigests) -> None:
        """The gate approved `digests` for `version`; `start(version)` refuses files that differ."""


@runtime_checkable
class Previews(Protocol):
    def remove(self) -> bool:
        """Remove this pull request's target and everything it runs. Idempotent: False when it was
        already gone. Only a preview target can be removed (DeployError on production)."""


@dataclass(frozen=True, slots=True)
class DeletedApp:
    """An app `DeletesApps.delete_app` removed."""

    id: str
    name: str


@runtime_checkable
class DeletesApps(Protocol):
    """A platform whose deploy targets are apps that can be deleted by id or name (App Platform)."""

    def delete_app(
        self,
        app_id: str | None,
        app_name: str | None,
        *,
        before_delete: Callable[[DeletedApp], None] | None = None,
    ) -> DeletedApp | None:
        """Delete the app with `app_id`, or else the one named `app_name`. Idempotent: None when no
        such app exists. `before_delete` is called with the app found, before anything is deleted
        (the run records which app it is deleting, for a recovery should it die; whatever it raises
        stops the delete). Raises ConfigError for the app this config deploys, DeployError."""


def answers_on_a_url(platform: object) -> bool:
    """False for a release users never reach by URL (an App Platform app of workers and jobs only):
    its platform verified it by what exists (the deployment went live, components healthy), and
    HTTP checks have nothing to ask. A platform says so with `serves_http`; the default is True."""
    return bool(getattr(platform, "serves_http", True))
