"""What the conformance suite needs of a platform: one `Harness`, built by its `harness.py`.

Each platform's tests folder has a `harness.py` with `build(tmp_path) -> Harness` (the platform
against its real peer, the seed release v1 live) and `document() -> dict` (a valid config for it).
`tests/platforms/conformance.py` finds them by the registry's platform names.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import requests

from orchestrator.config import parse_config
from orchestrator.contract import DeployConfig
from orchestrator.health.release_checks import ReleaseChecks
from orchestrator.platforms import registry
from orchestrator.platforms.base import Platform
from orchestrator.platforms.registry import PRODUCTION, PlatformContext, Target
from orchestrator.runlog import RunLog
from orchestrator.strategies import execute, plan_rollout

PREVIEW = Target.preview(7, "acme/shop")


@dataclass
class Harness:
    """One platform against its peer, with the seed release v1 live."""

    name: str
    document: dict[str, Any]
    workspace: Path
    env: dict[str, str]
    make_unhealthy: Callable[[str], None]
    answered: Callable[[requests.Response], str]
    image: Callable[[str], str]
    closers: list[Callable[[], None]] = field(default_factory=list)

    def config(self, strategy: str = "blue_green") -> DeployConfig:
        document = json.loads(json.dumps(self.document))
        document["deployment_config"]["strategy"] = strategy
        return parse_config(document, self.workspace)

    def platform(self, target: Target = PRODUCTION) -> Platform:
        context = PlatformContext(workspace=str(self.workspace), env=self.env)
        made = registry.descriptor(self.name).create(self.config(), context, target)
        proxy = getattr(getattr(made, "cluster", None), "proxy", None)
        if proxy is not None:
            self.closers.append(proxy.close)
        closing = getattr(made, "close", None)
        if callable(closing):
            self.closers.append(closing)
        return made

    def serving(self, platform: Platform, url: str | None = None) -> set[str]:
        """Which releases answer `/version` through `url` (default: the public route), over 8 requests."""
        base = (url or platform.live_url()).rstrip("/")
        return {self.answered(requests.get(base + "/version", timeout=10)) for _ in range(8)}

    def deploy(self, platform: Platform, version: str, checks: Any = None, strategy: str = "blue_green") -> None:
        """A rollout as the pipeline runs it: plan, then execute with the real release checks."""
        config = self.config(strategy)
        live = platform.live()
        old = live.version if live else None
        plan = plan_rollout(config, platform=platform, old=old, new=version, image=self.image(version))
        execute(plan, platform, checks or ReleaseChecks(config, dsn=None), RunLog(), sleep=lambda _s: None)


def quick(document: dict[str, Any]) -> dict[str, Any]:
    """Health checks fast enough for a test that waits on them."""
    document["health_check"].update(retries=2, interval_seconds=0.1, timeout_seconds=3)
    return document


def image(version: str) -> str:
    return f"registry.example/shop:{version}"


def harness_module(name: str) -> ModuleType:
    """`tests/platforms/<name>/harness.py`. Raises AssertionError naming the file to add."""
    try:
        return importlib.import_module(f"tests.platforms.{name}.harness")
    except ModuleNotFoundError as exc:
        if exc.name not in (f"tests.platforms.{name}", f"tests.platforms.{name}.harness"):
            raise
        raise AssertionError(
            f"platform {name} has no tests/platforms/{name}/harness.py (build(tmp_path) -> Harness, "
            "document() -> dict): every platform passes the conformance suite"
        ) from exc
