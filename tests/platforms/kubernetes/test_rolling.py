"""rolling on Kubernetes: the Deployment's native rolling update, which cuts over by itself."""

from __future__ import annotations

import json

import pytest

from orchestrator.errors import DeployError
from orchestrator.health.release_checks import ReleaseChecks
from orchestrator.platforms.base import Release
from orchestrator.runlog import RunLog
from orchestrator.strategies import execute, plan_rollout
from tests.peers.k8s_emulator import K8sEmulator

from .conftest import APP, NAMESPACE, MakePlatform, deploy_config, versions_seen


def _template_image(emu: K8sEmulator) -> str:
    return str(emu.get("deployments", NAMESPACE, APP)["spec"]["template"]["spec"]["containers"][0]["image"])  # type: ignore[index]


def test_rolling_update_replaces_the_template_with_max_unavailable_zero(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    platform = make_platform("rolling")
    assert platform.cuts_over_itself is True
    config = deploy_config("rolling")
    plan = plan_rollout(config, platform=platform, old="v1", new="v2", image="registry.example/shop:v2")
    assert plan.describe() == [
        "1. start release v2 (registry.example/shop:v2)",
        "2. verify the live release (health, database, endpoints, jobs, metrics)",
    ]

    outcome = execute(plan, platform, ReleaseChecks(config, dsn=None), RunLog())

    assert outcome.traffic_moved and all(p.passed for p in outcome.probes)
    deployment = emu.get("deployments", NAMESPACE, APP)
    assert deployment is not None
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert deployment["spec"]["progressDeadlineSeconds"] == 5
    assert _template_image(emu) == "registry.example/shop:v2"
    kept = json.loads(deployment["metadata"]["annotations"]["deploy-orchestrator/previous-template"])
    assert kept["spec"]["containers"][0]["image"] == "registry.example/shop:v1"
    assert versions_seen(platform.live_url()) == {"v2": 12}
    assert [r.version for r in platform.releases()] == ["v2", "v1"]
    assert emu.names("deployments", NAMESPACE) == [APP], "no second Deployment for a rolling update"


def test_progress_deadline_exceeded_names_the_deployment_and_restores_the_old_template(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    emu.never_ready.add("v2")
    platform = make_platform("rolling", deadline=1)

    with pytest.raises(DeployError) as error:
        platform.start("v2", "registry.example/shop:v2")

    message = str(error.value)
    assert "deployment shop in namespace prod did not roll out" in message
    assert "condition Progressing=False, reason ProgressDeadlineExceeded" in message
    assert "the previous template (v1) was restored" in message
    assert error.value.platform == "kubernetes"
    assert _template_image(emu) == "registry.example/shop:v1"
    assert versions_seen(platform.live_url()) == {"v1": 12}, "the old pods kept serving"
    platform.stop("v2")
    assert _template_image(emu) == "registry.example/shop:v1", "stop after the undo changes nothing"


def test_rollback_restores_the_previous_template_and_never_goes_forward_to_the_one_it_left(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    platform = make_platform("rolling")
    platform.start("v2", "registry.example/shop:v2")

    platform.rollback(Release("v1"))

    assert _template_image(emu) == "registry.example/shop:v1"
    assert versions_seen(platform.live_url()) == {"v1": 12}
    assert [r.version for r in platform.releases()] == ["v1"], "v2 was rolled back from: no candidate"
    with pytest.raises(DeployError, match="keeps the templates of no release"):
        platform.route({"v2": 100})


def test_an_undone_rollout_keeps_the_releases_before_it_and_never_the_failed_one(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    platform = make_platform("rolling", deadline=1)
    platform.start("v2", "registry.example/shop:v2")
    platform.start("v3", "registry.example/shop:v3")
    emu.never_ready.add("bad4")
    with pytest.raises(DeployError, match=r"the previous template \(v3\) was restored"):
        platform.start("bad4", "registry.example/shop:bad4")

    assert [r.version for r in platform.releases()] == ["v3", "v2", "v1"]
    platform.rollback(Release("v2"))
    assert _template_image(emu) == "registry.example/shop:v2"
    assert versions_seen(platform.live_url()) == {"v2": 12}
    assert [r.version for r in platform.releases()] == ["v2", "v1"]
    assert platform.retire(0) == ["v1"]
    assert [r.version for r in platform.releases()] == ["v2"]


def test_rolling_refuses_a_traffic_split_and_unknown_releases(make_platform: MakePlatform) -> None:
    platform = make_platform("rolling")
    with pytest.raises(DeployError, match="cannot hold a split; use strategy canary"):
        platform.route({"v1": 50, "v2": 50})
    with pytest.raises(DeployError, match="keeps the templates of no release to return to"):
        platform.rollback(Release("v0"))


def test_rolling_refuses_a_new_image_under_the_live_version_label_and_rollback_still_works(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    platform = make_platform("rolling")
    platform.start("v2", "registry.example/shop:v2")
    generation = emu.get("deployments", NAMESPACE, APP)["metadata"]["generation"]  # type: ignore[index]

    with pytest.raises(DeployError) as error:
        platform.start("v2", "registry.example/shop:v2-rebuilt")

    assert str(error.value).startswith(
        "rolling update to v2: release v2 is live with image registry.example/shop:v2 (Deployment shop); "
        "deploy the new image registry.example/shop:v2-rebuilt under a new version label"
    )
    assert emu.get("deployments", NAMESPACE, APP)["metadata"]["generation"] == generation  # type: ignore[index]
    assert _template_image(emu) == "registry.example/shop:v2"
    assert [r.version for r in platform.releases()] == ["v2", "v1"]
    # The same image (or none) is an idempotent re-run.
    assert platform.start("v2", "registry.example/shop:v2").image == "registry.example/shop:v2"
    assert platform.start("v2", None).image == "registry.example/shop:v2"

    platform.rollback(Release("v1"))
    assert _template_image(emu) == "registry.example/shop:v1"
    assert versions_seen(platform.live_url()) == {"v1": 12}
