"""One behavioural suite every platform passes, for every capability it declares.

Each platform is built the way a run builds it, through its descriptor's factory, against its real
peer, by its own `tests/platforms/<name>/harness.py` (see `tests/platforms/harness.py`): `local`
(real release processes behind the supervisor's proxy), `digitalocean` (the App Platform simulator
driven by real pydo), `kubernetes` (the API emulator driven by the real client). The platforms are
the registry's, so a new platform package runs here as soon as it exists, and fails until its
harness does. Cases for a capability the platform does not declare are not skipped silently: they
assert the capability is absent, and the config refuses what would need it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from orchestrator.config import load_request, parse_config, schema
from orchestrator.contract import DeployConfig
from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.health.release_checks import ReleaseChecks
from orchestrator.health.verdict import CheckVerdict
from orchestrator.platforms import registry
from orchestrator.platforms.base import (
    DeletesApps,
    NativeRollback,
    PinsArtifacts,
    Previews,
    Retirement,
    StickyRouter,
    TrafficMeter,
    TrafficRouter,
)
from orchestrator.preview import deploy_preview
from orchestrator.rollback import roll_back
from orchestrator.runlog import RunLog
from orchestrator.strategies import RolloutFailure
from orchestrator.strategies.support import REQUIREMENTS, supported
from tests.platforms.harness import PREVIEW, Harness, harness_module
from tests.workspace import write_config

CAPABILITIES = (
    TrafficRouter,
    StickyRouter,
    TrafficMeter,
    Retirement,
    NativeRollback,
    Previews,
    PinsArtifacts,
    DeletesApps,
)
PLATFORMS = tuple(sorted(registry.descriptors()))
"""Every platform package this build has: a new one runs here as soon as its descriptor exists."""


class FailingVerification:
    """The real release checks before the switch; the verification after it fails, as a metric
    threshold would (the one thing no peer can be made to do on its own)."""

    def __init__(self, config: DeployConfig) -> None:
        self._real = ReleaseChecks(config, dsn=None)

    def release(self, base_url: str, *, analysis: bool, deadline: float | None = None) -> CheckVerdict:
        return self._real.release(base_url, analysis=analysis, deadline=deadline)

    def live(self, base_url: str) -> CheckVerdict:
        return CheckVerdict(False, (), "error rate 12% above the 1% threshold")


# A hosts case starts SSH hosts and installs the orchestrator on them: seconds, not milliseconds.
@pytest.fixture(params=[pytest.param(p, marks=pytest.mark.slow) if p == "hosts" else p for p in PLATFORMS])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    made: Harness = harness_module(request.param).build(tmp_path)
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
    document = harness_module(name).document()
    for strategy in REQUIREMENTS:
        document["deployment_config"]["strategy"] = strategy
        if strategy in can:
            parse_config(document, tmp_path)
            continue
        with pytest.raises(ConfigError) as error:
            parse_config(document, tmp_path)
        alternatives = ", ".join(s for s in ("blue_green", "canary", "rolling") if s in can)
        in_schema_order = schema()["properties"]["deployment_config"]["properties"]["platform"]["enum"]
        others = ", ".join(
            p for p in in_schema_order if p in PLATFORMS and strategy in supported(registry.descriptor(p).capabilities)
        )
        assert error.value.problems == (
            f"deployment_config.strategy: {strategy} is not possible on {name}; "
            f"use {alternatives} there, or platform {others} for {strategy}",
        )


def test_every_platform_is_covered_by_this_suite() -> None:
    for name in PLATFORMS:
        module = harness_module(name)
        assert callable(module.build) and callable(module.document), f"tests/platforms/{name}/harness.py"
