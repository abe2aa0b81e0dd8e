"""One behavioural suite every platform passes, for every capability it declares.

Each platform is built the way a run builds it, through its descriptor's factory, against its real
peer: `local` (real release processes behind the supervisor's proxy), `digitalocean` (the App
Platform simulator driven by real pydo), `kubernetes` (the API emulator driven by the real client).
A future platform adds a `Harness` here and passes the same cases. Cases for a capability the
platform does not declare are not skipped silently: they assert the capability is absent, and the
config refuses what would need it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.config import load_request, parse_config
from orchestrator.contract import DeployConfig
from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.health.release_checks import ReleaseChecks
from orchestrator.health.verdict import CheckVerdict
from orchestrator.platforms import registry
from orchestrator.platforms.base import (
    DeletesApps,
    NativeRollback,
    PinsArtifacts,
    Platform,
    Previews,
    Retirement,
    TrafficRouter,
)
from orchestrator.platforms.registry import PRODUCTION, PlatformContext, Target
from orchestrator.preview import deploy_preview
from orchestrator.rollback import roll_back
from orchestrator.runlog import RunLog
from orchestrator.strategies import RolloutFailure, execute, plan_rollout
from orchestrator.strategies.support import REQUIREMENTS, supported
from tests.peers import postgres
from tests.peers.do_simulator import DoSimulator
from tests.peers.k8s_emulator import K8sEmulator
from tests.platforms.local.conftest import kill_leftovers
from tests.workspace import base_config, write_config

CAPABILITIES = (TrafficRouter, Retirement, NativeRollback, Previews, PinsArtifacts, DeletesApps)
PLATFORMS = ("local", "digitalocean", "kubernetes")
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


def _image(version: str) -> str:
    return f"registry.example/shop:{version}"


class FailingVerification:
    """The real release checks before the switch; the verification after it fails, as a metric
    threshold would (the one thing no peer can be made to do on its own)."""

    def __init__(self, config: DeployConfig) -> None:
        self._real = ReleaseChecks(config, dsn=None)

    def release(self, base_url: str, *, analysis: bool, deadline: float | None = None) -> CheckVerdict:
        return self._real.release(base_url, analysis=analysis, deadline=deadline)

    def live(self, base_url: str) -> CheckVerdict:
        return CheckVerdict(False, (), "error rate 12% above the 1% threshold")


def _quick(document: dict[str, Any]) -> dict[str, Any]:
    document["health_check"].update(retries=2, interval_seconds=0.1, timeout_seconds=3)
    return document


def _local(tmp_path: Path) -> Harness:
    marks = tmp_path / "unhealthy"
    marks.mkdir()
    document = _quick(base_config(postgres.free_port()))
    # A release whose mark file exists answers /health with 503 (the demo app's own switch).
    script = 'test -e "$0" && export DEMO_UNHEALTHY=1; exec "$@"'
    local = document["deployment_config"]["local"]
    local["command"] = ["sh", "-c", script, f"{marks}/{{version}}", *local["command"]]
    write_config(tmp_path, document)
    harness = Harness(
        "local",
        document,
        tmp_path,
        {"GITHUB_WORKSPACE": str(tmp_path)},
        make_unhealthy=lambda version: (marks / version).touch(),
        answered=lambda r: str(r.json()["version"]),
        image=_image,
    )
    state = tmp_path / local["state_dir"]
    harness.closers.append(lambda: kill_leftovers(state))
    harness.closers.append(lambda: kill_leftovers(state / "previews" / PREVIEW.name))
    harness.deploy(harness.platform(), "v1")
    return harness


def _digitalocean(tmp_path: Path) -> Harness:
    sim = DoSimulator()
    app_id = sim.seed_app("shop", version="v1")
    document = _quick(base_config())
    document["deployment_config"] = {"strategy": "blue_green", "platform": "digitalocean", "do_app_id": app_id}
    env = {
        "GITHUB_WORKSPACE": str(tmp_path),
        "DIGITALOCEAN_TOKEN": sim.token,
        "DIGITALOCEAN_API_URL": sim.url,
        "DIGITALOCEAN_CA_BUNDLE": sim.ca_bundle,
    }

    def close() -> None:
        sim.close()
        assert sim.violations == [], "\n".join(sim.violations)

    return Harness(
        "digitalocean",
        document,
        tmp_path,
        env,
        make_unhealthy=lambda version: sim.set_health(version, False),
        answered=lambda r: r.text,
        image=lambda version: f"registry.digitalocean.com/acme/shop:{version}",
        closers=[close],
    )


def _kubernetes(tmp_path: Path) -> Harness:
    emu = K8sEmulator()
    emu.seed_app("shop", namespace="prod", version="v1", replicas=4)
    document = _quick(base_config())
    document["deployment_config"] = {
        "strategy": "blue_green",
        "platform": "kubernetes",
        "k8s_namespace": "prod",
        "k8s_deployment": "shop",
        "k8s_progress_deadline_seconds": 10,
    }
    document["credentials"]["k8s_kubeconfig_env_var"] = "KUBECONFIG_CONTENT"
    env = {"GITHUB_WORKSPACE": str(tmp_path), "KUBECONFIG_CONTENT": emu.kubeconfig()}
    return Harness(
        "kubernetes",
        document,
        tmp_path,
        env,
        make_unhealthy=lambda version: emu.set_health(version, False),
        answered=lambda r: str(r.json()["version"]),
        image=_image,
        closers=[emu.close],
    )


_BUILD = {"local": _local, "digitalocean": _digitalocean, "kubernetes": _kubernetes}


@pytest.fixture(params=PLATFORMS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    made = _BUILD[request.param](tmp_path)
    yield made
    for close in reversed(made.closers):
        close()


def _declares(harness: Harness, capability: type) -> bool:
    return registry.descriptor(harness.name).can(capability)


# --- what every platform does ----------------------------------------------------------------


def test_the_adapter_has_exactly_the_capabilities_its_descriptor_declares(harness: Harness) -> None:
    platform = harness.platform()
    for capability in CAPABILITIES:
        assert isinstance(platform, capability) == _declares(harness, capability), capability.__name__


def test_the_first_release_is_live_kept_and_serving(harness: Harness) -> None:
    platform = harness.platform()
    live = platform.live()
    assert live is not None and live.version == "v1"
    assert [r.version for r in platform.releases()] == ["v1"]
    assert harness.serving(platform) == {"v1"}


def test_a_second_deploy_takes_all_traffic_and_keeps_the_first(harness: Harness) -> None:
    platform = harness.platform()
    harness.deploy(platform, "v2")
    live = platform.live()
    assert live is not None and live.version == "v2"
    assert [r.version for r in platform.releases()][:2] == ["v2", "v1"]
    assert harness.serving(platform) == {"v2"}


def test_a_failure_before_the_switch_never_moves_traffic(harness: Harness) -> None:
    platform = harness.platform()
    harness.make_unhealthy("v2")
    with pytest.raises(RolloutFailure) as failure:
        harness.deploy(platform, "v2")
    assert failure.value.outcome.traffic_moved is False
    assert harness.serving(platform) == {"v1"}
    live = platform.live()
    assert live is not None and live.version == "v1"


def test_a_failure_after_the_switch_rolls_back_and_the_old_release_serves(harness: Harness) -> None:
    platform = harness.platform()
    previous = platform.live()
    config = harness.config()
    with pytest.raises(RolloutFailure) as failure:
        harness.deploy(platform, "v2", checks=FailingVerification(config))
    assert failure.value.outcome.traffic_moved is True
    report = roll_back(
        platform=platform,
        previous=previous,
        failed_version="v2",
        traffic_moved=True,
        reason=f"{failure.value.step}: {failure.value}",
        checks=ReleaseChecks(config, dsn=None),
        undo_migrations=list,
        budget_seconds=60,
        log=RunLog(),
    )
    assert report.error is None, report.error
    assert harness.serving(platform) == {"v1"}
    live = platform.live()
    assert live is not None and live.version == "v1"


def test_rollback_restores_exactly_the_old_release(harness: Harness) -> None:
    platform = harness.platform()
    harness.deploy(platform, "v2")
    old = next(r for r in platform.releases() if r.version == "v1")

    platform.rollback(old)
    if isinstance(platform, NativeRollback):
        platform.confirm_rollback(True)

    live = platform.live()
    assert live is not None and (live.version, live.image) == (old.version, old.image)
    assert harness.serving(platform) == {"v1"}


# --- capabilities ----------------------------------------------------------------------------


def test_retire_keeps_the_newest_previous_releases(harness: Harness) -> None:
    platform = harness.platform()
    if not _declares(harness, Retirement):
        assert not isinstance(platform, Retirement)
        return
    assert isinstance(platform, Retirement)
    for version in ("v2", "v3"):
        harness.deploy(platform, version)

    retired = platform.retire(keep=1)

    assert retired == ["v1"]
    assert [r.version for r in platform.releases()] == ["v3", "v2"]
    assert harness.serving(platform) == {"v3"}
    assert platform.retire(keep=1) == [], "retiring again finds nothing more"


def test_a_router_splits_traffic_as_its_shape_says(harness: Harness) -> None:
    platform = harness.platform()
    if not _declares(harness, TrafficRouter):
        assert not isinstance(platform, TrafficRouter)
        return
    assert isinstance(platform, TrafficRouter)
    shape = platform.traffic_shape()
    platform.start_sized("v2", harness.image("v2"), 50)
    platform.route({"v1": 50, "v2": 50})
    seen = [harness.answered(requests.get(platform.live_url().rstrip("/") + "/version", timeout=10)) for _ in range(40)]
    assert set(seen) == {"v1", "v2"}, f"a 50/50 split on {shape} answered {seen}"
    platform.route({"v2": 100})
    assert harness.serving(platform) == {"v2"}


def test_previews_are_created_and_torn_down_idempotently(harness: Harness) -> None:
    if not _declares(harness, Previews):
        with pytest.raises(ConfigError, match=f"mode: {harness.name} has no pull-request previews"):
            _preview_request(harness)
        return
    preview = harness.platform(PREVIEW)
    assert isinstance(preview, Previews)
    first = deploy_preview(preview, "pr7-a", harness.image("pr7-a"))
    again = deploy_preview(preview, "pr7-a", harness.image("pr7-a"))
    assert first.url is not None and again.url == first.url
    assert harness.serving(preview, first.url) == {"pr7-a"}
    production = harness.platform()
    assert harness.serving(production) == {"v1"}, "production never sees the preview"
    assert "pr7-a" not in [r.version for r in production.releases()]

    assert preview.remove() is True
    assert preview.remove() is False, "a second teardown finds nothing and is fine"
    assert harness.serving(production) == {"v1"}
    assert isinstance(production, Previews)
    with pytest.raises(OrchestratorError, match="only a preview target can be removed"):
        production.remove()


def _preview_request(harness: Harness) -> None:
    write_config(harness.workspace, harness.document)
    env = {**harness.env, "GITHUB_REPOSITORY": "acme/shop"}
    load_request({"config": "deploy.json", "version": "pr7-a", "mode": "preview", "pr-number": "7"}, env)


# --- what the config refuses -----------------------------------------------------------------


@pytest.mark.parametrize("name", PLATFORMS)
def test_a_strategy_a_platform_cannot_run_is_a_config_error_naming_the_alternatives(name: str, tmp_path: Path) -> None:
    can = supported(registry.descriptor(name).capabilities)
    document = _document_for(name)
    for strategy in REQUIREMENTS:
        document["deployment_config"]["strategy"] = strategy
        if strategy in can:
            parse_config(document, tmp_path)
            continue
        with pytest.raises(ConfigError) as error:
            parse_config(document, tmp_path)
        alternatives = ", ".join(s for s in ("blue_green", "canary", "rolling") if s in can)
        others = ", ".join(p for p in PLATFORMS if strategy in supported(registry.descriptor(p).capabilities))
        assert error.value.problems == (
            f"deployment_config.strategy: {strategy} is not possible on {name}; "
            f"use {alternatives} there, or platform {others} for {strategy}",
        )


def _document_for(name: str) -> dict[str, Any]:
    document = _quick(base_config())
    if name == "local":
        return document
    document["deployment_config"] = {
        "digitalocean": {"strategy": "blue_green", "platform": "digitalocean", "do_app_id": "app-1"},
        "kubernetes": {
            "strategy": "blue_green",
            "platform": "kubernetes",
            "k8s_namespace": "prod",
            "k8s_deployment": "shop",
        },
    }[name]
    return document


def test_every_platform_is_covered_by_this_suite() -> None:
    assert sorted(registry.descriptors()) == sorted(PLATFORMS) == sorted(_BUILD), "add a Harness for it"
