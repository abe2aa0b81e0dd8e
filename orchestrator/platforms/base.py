"""The Platform protocol every adapter implements, and the registry that picks one.

Strategies see only this protocol. Adapters return contract dataclasses (never raw SDK
objects) and translate SDK errors into `DeployError` naming the operation.

Two families of platform exist:
- platforms that route traffic themselves on our command (`local`, `kubernetes`): `start`
  brings a release up without traffic, `route` moves traffic by weight;
- platforms that cut over on their own once a release passes their health gate
  (`digitalocean`): `cuts_over_itself` is True, `start` returns once the release is live,
  and `route` is only used to send traffic back (`rollback`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from orchestrator.artifacts import ArtifactDigests
from orchestrator.contract import DeployConfig

__all__ = [
    "REGISTRY",
    "DeletedApp",
    "DeletesApps",
    "PinsArtifacts",
    "Platform",
    "PlatformFactory",
    "Release",
    "answers_on_a_url",
    "register",
    "supported_strategies",
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


@runtime_checkable
class Platform(Protocol):
    name: str
    strategies: frozenset[str]
    cuts_over_itself: bool

    def live(self) -> Release | None:
        """The release receiving all traffic now, or None before the first deploy. Read-only."""

    def live_url(self) -> str:
        """The public URL users reach. Read-only."""

    def releases(self) -> list[Release]:
        """Releases kept for instant rollback, newest first, the live one included. Read-only."""

    def start(self, version: str, image: str | None) -> Release:
        """Bring `version` up. Idempotent per version.

        Without `cuts_over_itself` the release gets no traffic yet; with it, this returns once the
        platform has made it live (or raises DeployError, the old release still serving).
        """

    def route(self, weights: Mapping[str, int]) -> None:
        """Send new requests to releases by weight (percent, summing to 100). Idempotent.

        Requests already in flight finish where they started. Raises DeployError.
        """

    def rollback(self, to: Release) -> None:
        """Make `to` the live release again, as fast as the platform can. Raises DeployError."""

    def confirm_rollback(self, healthy: bool) -> None:
        """After `rollback` and the re-check of the old release: keep it (healthy) or undo the rollback.

        Platforms whose rollback is plain routing do nothing. DigitalOcean commits or reverts its
        pinned rollback here. Raises DeployError.
        """

    def retire(self, keep: int) -> list[str]:
        """Stop releases without traffic beyond the newest `keep` previous ones; return their versions."""

    def stop(self, version: str) -> None:
        """Stop one release that has no traffic (an aborted one). Idempotent."""


@runtime_checkable
class PinsArtifacts(Protocol):
    """A platform that captures a release's files itself (local): it holds its copies to the gate's digests."""

    def pin_artifacts(self, version: str, digests: ArtifactDigests) -> None:
        """The gate approved `digests` for `version`; `start(version)` refuses files that differ."""


@dataclass(frozen=True, slots=True)
class DeletedApp:
    """An app `DeletesApps.delete_app` removed."""

    id: str
    name: str


@runtime_checkable
class DeletesApps(Protocol):
    """A platform whose deploy targets are apps that can be deleted by id or name (App Platform)."""

    def delete_app(self, app_id: str | None, app_name: str | None) -> DeletedApp | None:
        """Delete the app with `app_id`, or else the one named `app_name`. Idempotent: None when no
        such app exists. Raises ConfigError for the app this config deploys, DeployError."""


PlatformFactory = Callable[[DeployConfig, "PlatformContext"], Platform]


@dataclass(frozen=True, slots=True)
class PlatformContext:
    """What an adapter needs beyond the config: the workspace and resolved secrets."""

    workspace: str
    env: Mapping[str, str]


REGISTRY: dict[str, PlatformFactory] = {}


def register(name: str, factory: PlatformFactory) -> None:
    REGISTRY[name] = factory


def supported_strategies() -> Mapping[str, frozenset[str]]:
    """Which strategies each platform can run: config validation checks combinations against it."""
    return {
        "local": frozenset({"blue_green", "canary", "rolling"}),
        "digitalocean": frozenset({"blue_green", "rolling"}),
        "kubernetes": frozenset({"blue_green", "canary", "rolling"}),
    }


def answers_on_a_url(platform: object) -> bool:
    """False for a release users never reach by URL (an App Platform app of workers and jobs only):
    its platform verified it by what exists (the deployment went live, components healthy), and
    HTTP checks have nothing to ask. A platform says so with `serves_http`; the default is True."""
    return bool(getattr(platform, "serves_http", True))
