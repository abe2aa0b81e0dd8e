"""rolling on Kubernetes: the same adapter as blue/green and canary, asked for one pod's share at a
time by the rolling plan, each share checked before the next."""

from __future__ import annotations

from collections import Counter

import pytest

from orchestrator.contract import DeployConfig
from orchestrator.health.release_checks import ReleaseChecks
from orchestrator.platforms.base import Release
from orchestrator.rollback import roll_back
from orchestrator.runlog import RunLog
from orchestrator.strategies import RolloutFailure, execute, plan_rollout
from tests.peers.k8s_emulator import K8sEmulator

from .conftest import APP, NAMESPACE, MakePlatform, deploy_config, replicas, selector_version, versions_seen
from .test_canary import SamplingChecks


def _rolling() -> DeployConfig:
    return deploy_config("rolling")


def test_rolling_moves_one_pod_at_a_time_and_states_the_plan(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    plan = plan_rollout(_rolling(), platform=platform, old="v1", new="v2", image="registry.example/shop:v2")
    assert plan.describe() == [
        "1. start release v2 (registry.example/shop:v2)",
        "2. health-check the new release before traffic moves",
        "3. route 75% to v1, 25% to v2",
        "4. analysis at 25%",
        "5. route 50% to v1, 50% to v2",
        "6. analysis at 50%",
        "7. route 25% to v1, 75% to v2",
        "8. analysis at 75%",
        "9. route 100% to v2",
        "10. verify the live release (health, database, endpoints, jobs, metrics)",
    ]
    checks = SamplingChecks(emu)

    outcome = execute(plan, platform, checks, RunLog(), sleep=lambda _s: None)

    assert outcome.traffic_moved
    assert [s[1:] for s in checks.samples[:3]] == [(3, 1), (2, 2), (1, 3)], "one pod's share per step"
    assert checks.samples[1][0] == Counter({"v1": 20, "v2": 20})
    assert checks.samples[3][0] == Counter({"v2": 40})
    assert selector_version(emu) == "v2"
    assert replicas(emu, "shop-v2") == 4 and replicas(emu, APP) == 0
    assert [r.version for r in platform.releases()] == ["v2", "v1"]


def test_a_failed_step_sends_every_request_back_to_the_old_pods(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    plan = plan_rollout(_rolling(), platform=platform, old="v1", new="v2", image="registry.example/shop:v2")

    with pytest.raises(RolloutFailure, match="analysis at 50% failed"):
        execute(plan, platform, SamplingChecks(emu, fail_at=2), RunLog(), sleep=lambda _s: None)
    report = roll_back(
        platform=platform,
        previous=Release("v1", ref=APP),
        failed_version="v2",
        traffic_moved=True,
        reason="analysis failed",
        checks=ReleaseChecks(_rolling(), dsn=None),
        undo_migrations=list,
        budget_seconds=30,
        log=RunLog(),
    )

    assert report.error is None, report.error
    assert replicas(emu, APP) == 4 and selector_version(emu) == "v1"
    assert versions_seen(platform.live_url(), 20) == {"v1": 20}
    assert emu.get("deployments", NAMESPACE, "shop-v2") is None


def test_a_first_rolling_deploy_is_a_plain_switch(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    plan = plan_rollout(_rolling(), platform=platform, old=None, new="v2", image=None)
    assert plan.describe()[2] == "3. route 100% to v2"


def test_a_failed_rollout_is_never_kept_to_return_to(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform(deadline=1)
    for version in ("v2", "v3"):
        plan = plan_rollout(_rolling(), platform=platform, old=None, new=version, image=f"shop:{version}")
        execute(plan, platform, SamplingChecks(emu), RunLog(), sleep=lambda _s: None)
    emu.never_ready.add("bad4")
    plan = plan_rollout(_rolling(), platform=platform, old="v3", new="bad4", image="shop:bad4")

    with pytest.raises(RolloutFailure, match="did not roll out"):
        execute(plan, platform, SamplingChecks(emu), RunLog(), sleep=lambda _s: None)
    platform.stop("bad4")

    assert [r.version for r in platform.releases()] == ["v3", "v2", "v1"]
    assert versions_seen(platform.live_url()) == {"v3": 12}, "the old pods kept serving"
    platform.rollback(Release("v2"))
    assert versions_seen(platform.live_url()) == {"v2": 12}
