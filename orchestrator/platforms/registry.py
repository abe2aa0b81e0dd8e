"""The platform registry: every platform package describes itself with one `PlatformDescriptor`.

A descriptor says what config, CLI and pipeline need to know about a platform: its name, the
cross-field checks on its config block and the typed settings built from it, the key its deploys
are locked under, the capabilities its adapter has, and a factory for a target (production, or
`pr-<n>` for a pull request's preview).

Platforms are found, not listed: every sub-package of `orchestrator.platforms` with a `descriptor`
module is one. A descriptor module imports no SDK: the factory imports the adapter (and pydo or the
kubernetes client with it) only when that platform is used.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from orchestrator.contract import DeployConfig, DeploymentConfig
from orchestrator.errors import ConfigError
from orchestrator.platforms.base import Platform

__all__ = ["PRODUCTION", "PlatformContext", "PlatformDescriptor", "Target", "descriptor", "descriptors"]


@dataclass(frozen=True, slots=True)
class Target:
    """Where a platform deploys: production, or one pull request's preview beside it."""

    pr_number: int | None = None
    repository: str | None = None
    """owner/name: preview resources are named after it."""

    @property
    def name(self) -> str:
        return "production" if self.pr_number is None else f"pr-{self.pr_number}"

    @property
    def is_preview(self) -> bool:
        return self.pr_number is not None

    @classmethod
    def preview(cls, pr_number: int, repository: str) -> Target:
        return cls(pr_number=pr_number, repository=repository)


PRODUCTION = Target()


@dataclass(frozen=True, slots=True)
class PlatformContext:
    """What an adapter needs beyond the config: the workspace and the run's environment."""

    workspace: str
    env: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class PlatformDescriptor:
    name: str
    capabilities: frozenset[type]
    """The capability protocols of `orchestrator.platforms.base` its adapter implements."""
    create: Callable[[DeployConfig, PlatformContext, Target], Platform]
    """The adapter for a target. Raises ConfigError (a missing credential), never for config the
    checks below accepted."""
    config_problems: Callable[[Mapping[str, Any], Path], Iterable[str]]
    """Cross-field problems of the platform's block in a raw config document (already valid against
    the schema), each `field.path: what is wrong; the fix`."""
    lock_key: Callable[[DeploymentConfig], str]
    """What one deploy at a time is held on, e.g. `digitalocean/<app id>`."""
    settings: Callable[[Mapping[str, Any], Path], object] | None = None
    """The platform's own typed settings from the raw `deployment_config` (valid against the schema,
    the checks above passed), kept as `DeploymentConfig.settings` for its factory. None: the
    platform's fields are the seed contract's flat ones."""
    builds_from_source: bool = False
    """Whether it can build components from the repository's source (App Platform's git-source
    components): then a run holds them to the commit it validated, and the gates digest that commit."""

    def can(self, capability: type) -> bool:
        return capability in self.capabilities

    def target_key(self, deployment: DeploymentConfig, target: Target) -> str:
        key = self.lock_key(deployment)
        return key if not target.is_preview else f"{key}/{target.name}"


@cache
def descriptors() -> Mapping[str, PlatformDescriptor]:
    """Every platform package's descriptor, by name."""
    import orchestrator.platforms as package

    found: dict[str, PlatformDescriptor] = {}
    for module in pkgutil.iter_modules(package.__path__):
        if not module.ispkg:
            continue
        try:
            described = importlib.import_module(f"{package.__name__}.{module.name}.descriptor")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package.__name__}.{module.name}.descriptor":
                raise
            continue
        entry: PlatformDescriptor = described.DESCRIPTOR
        found[entry.name] = entry
    return found


def descriptor(name: str) -> PlatformDescriptor:
    """The named platform's descriptor. Raises ConfigError naming the platforms this build has."""
    known = descriptors()
    if name not in known:
        raise ConfigError(
            f"deployment_config.platform: {name} is not available in this version of deploy-orchestrator; "
            f"use one of {', '.join(sorted(known)) or 'none'}"
        )
    return known[name]
