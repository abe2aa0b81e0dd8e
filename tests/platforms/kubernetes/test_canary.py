"""Canary on Kubernetes: weights realised as replica counts under a selector spanning both releases,
observed request by request through the API server's service proxy."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from orchestrator.contract import CanaryStep
from orchestrator.errors import DeployError
from orchestrator.health.release_checks import ReleaseChecks
from orchestrator.health.verdict import CheckVerdict
from orchestrator.platforms.base import Release
from orchestrator.rollback import roll_back
from orchestrator.runlog import RunLog
from orchestrator.strategies import RolloutFailure, execute, plan_rollout
from tests.peers.k8s_emulator import K8sEmulator

from .conftest import APP, NAMESPACE, MakePlatform, deploy_config, replicas, selector_version, versions_seen

STEPS = (CanaryStep(weight=25), CanaryStep(weight=50))


class SamplingChecks:
    """The real release checks, plus a record of who answered 40 requests at each analysis."""

    def __init__(self, emu: K8sEmulator, fail_at: int | None = None) -> None:
        self._emu = emu
        self._real = ReleaseChecks(deploy_config("canary", STEPS), dsn=None)
        self._fail_at = fail_at
        self.samples: list[tuple[Counter[str], int | None, int | None]] = []

    def release(self, base_url: str, *, analysis: bool, deadline: float | None = None) -> CheckVerdict:
        return self._real.release(base_url, analysis=analysis, deadline=deadline)

    def live(self, base_url: str) -> CheckVerdict:
        self.samples.append((versions_seen(base_url, 40), replicas(self._emu, APP), replicas(self._emu, "shop-v2")))
        if self._fail_at is not None and len(self.samples) == self._fail_at:
            return CheckVerdict(False, (), "error rate above threshold")
        return self._real.live(base_url)


def test_canary_moves_traffic_by_replica_ratio_at_each_step(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    checks = SamplingChecks(emu)
    plan = plan_rollout(deploy_config("canary", STEPS), platform=platform, old="v1", new="v2", image=None)

    execute(plan, platform, checks, RunLog(), sleep=lambda _s: None)

    # 4 replicas: 25% is 3 + 1 pods, 50% is 2 + 2; the proxy spreads requests per ready pod.
    assert checks.samples[0] == (Counter({"v1": 30, "v2": 10}), 3, 1)
    assert checks.samples[1] == (Counter({"v1": 20, "v2": 20}), 2, 2)
    # The final verification: everything on v2 at full size, the selector pinned to it again.
    assert checks.samples[2][0] == Counter({"v2": 40})
    assert selector_version(emu) == "v2"
    assert replicas(emu, "shop-v2") == 4
    assert replicas(emu, APP) == 0, "the old release is scaled to 0 but kept"
    assert [r.version for r in platform.releases()] == ["v2", "v1"]


def test_canary_widens_the_selector_to_every_release_during_a_split(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    platform.start_sized("v2", None, 25)
    assert replicas(emu, "shop-v2") == 1, "the canary starts with the pods of its first share"

    platform.route({"v1": 75, "v2": 25})

    assert selector_version(emu) is None
    assert emu.get("services", NAMESPACE, APP)["spec"]["selector"] == {"app.kubernetes.io/name": APP}  # type: ignore[index]
    assert emu.endpoints(NAMESPACE, APP) == {"v1": 3, "v2": 1}


def test_a_failed_canary_analysis_scales_the_old_release_back_up(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    checks = SamplingChecks(emu, fail_at=2)
    plan = plan_rollout(deploy_config("canary", STEPS), platform=platform, old="v1", new="v2", image=None)

    with pytest.raises(RolloutFailure, match="analysis at 50% failed"):
        execute(plan, platform, checks, RunLog(), sleep=lambda _s: None)
    report = roll_back(
        platform=platform,
        previous=Release("v1", ref=APP),
        failed_version="v2",
        traffic_moved=True,
        reason="analysis failed",
        checks=ReleaseChecks(deploy_config("canary", STEPS), dsn=None),
        undo_migrations=list,
        budget_seconds=30,
        log=RunLog(),
    )

    assert report.error is None, report.error
    assert replicas(emu, APP) == 4
    assert selector_version(emu) == "v1"
    assert versions_seen(platform.live_url(), 20) == {"v1": 20}
    assert emu.get("deployments", NAMESPACE, "shop-v2") is None


def test_start_during_a_split_refuses_a_third_release_and_a_new_canary_image(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    platform.start("v2", "registry.example/shop:v2")
    platform.route({"v1": 50, "v2": 50})
    assert selector_version(emu) is None
    split = emu.endpoints(NAMESPACE, APP)
    assert split == {"v1": 2, "v2": 2}

    with pytest.raises(DeployError, match=r"releases v1, v2 serve now.*route 100% to one release first"):
        platform.start("v3", "registry.example/shop:v3")
    with pytest.raises(
        DeployError, match=re.escape("release v2 is live with image registry.example/shop:v2 (Deployment shop-v2)")
    ):
        platform.start("v2", "registry.example/shop:v2-rebuilt")
    # Re-running the canary's own start leaves the split alone.
    platform.start("v2", "registry.example/shop:v2")

    assert emu.get("deployments", NAMESPACE, "shop-v3") is None
    assert selector_version(emu) is None
    assert emu.endpoints(NAMESPACE, APP) == split


def test_a_weight_the_replicas_cannot_hold_is_stated_in_the_plan(make_platform: MakePlatform) -> None:
    steps = (CanaryStep(weight=10), CanaryStep(weight=50))
    plan = plan_rollout(deploy_config("canary", steps), platform=make_platform(), old="v1", new="v2", image=None)
    assert plan.describe()[2:4] == [
        "3. route 90% to v1, 10% to v2 (effective 75% to v1, 25% to v2: the platform splits by whole replicas)",
        "4. analysis at 10%",
    ]
    assert plan.describe()[4] == "5. route 50% to v1, 50% to v2", "a weight it can hold is stated as it is"
