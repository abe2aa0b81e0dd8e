"""blue/green on Kubernetes, driven by the real strategy executor and release checks, observed
through the emulated API server (its state and its service proxy)."""

from __future__ import annotations

import json
import re

import pytest

from orchestrator.errors import DeployError, HealthError
from orchestrator.health.release_checks import ReleaseChecks
from orchestrator.platforms.base import Release
from orchestrator.rollback import roll_back
from orchestrator.runlog import RunLog
from orchestrator.strategies import RolloutFailure, execute, plan_rollout
from tests.peers.k8s_emulator import K8sEmulator

from .conftest import APP, NAMESPACE, MakePlatform, deploy_config, replicas, selector_version, versions_seen


def _deploy(platform, version: str, *, strategy: str = "blue_green") -> None:
    config = deploy_config(strategy)
    live = platform.live()
    plan = plan_rollout(config, platform=platform, old=live.version if live else None, new=version, image=None)
    execute(plan, platform, ReleaseChecks(config, dsn=None), RunLog(), sleep=lambda _s: None)


def test_blue_green_switches_the_service_selector_and_keeps_the_old_deployment(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    assert versions_seen(platform.live_url()) == {"v1": 12}

    config = deploy_config()
    plan = plan_rollout(config, platform=platform, old="v1", new="v2", image="registry.example/shop:v2")
    assert plan.describe() == [
        "1. start release v2 (registry.example/shop:v2)",
        "2. health-check the new release before traffic moves",
        "3. route 100% to v2",
        "4. verify the live release (health, database, endpoints, jobs, metrics)",
    ]
    outcome = execute(plan, platform, ReleaseChecks(config, dsn=None), RunLog())

    assert outcome.traffic_moved and all(p.passed for p in outcome.probes)
    assert selector_version(emu) == "v2"
    assert versions_seen(platform.live_url()) == {"v2": 12}
    assert replicas(emu, APP) == 4, "the old release stays at full size for an instant switch back"
    created = emu.get("deployments", NAMESPACE, "shop-v2")
    assert created is not None
    assert created["spec"]["replicas"] == 4
    assert created["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/shop:v2"
    assert created["spec"]["selector"]["matchLabels"]["deploy-orchestrator/version"] == "v2"
    assert created["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    run = json.loads(created["metadata"]["annotations"]["actions.github.com/k8s-deploy"])
    assert run["run"] == "4242" and run["commit"] == "abc123"
    assert platform.live() == Release("v2", image="registry.example/shop:v2", ref="shop-v2")
    assert [r.version for r in platform.releases()] == ["v2", "v1"]


def test_pre_switch_check_reaches_only_the_new_pods_through_the_preview_service_proxy(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    platform = make_platform()

    release = platform.start("v2", "registry.example/shop:v2")

    assert release.url is not None
    assert release.url.endswith(f"/api/v1/namespaces/{NAMESPACE}/services/shop-preview:http/proxy/")
    assert versions_seen(release.url) == {"v2": 12}
    assert versions_seen(platform.live_url()) == {"v1": 12}, "no traffic before the switch"
    assert selector_version(emu) == "v1"
    assert selector_version(emu, "shop-preview") == "v2"
    # The requests went through the API server's service proxy, authenticated by the local proxy.
    assert emu.count("GET", rf"/api/v1/namespaces/{NAMESPACE}/services/shop-preview:http/proxy/version") == 12


def test_unhealthy_new_release_never_gets_traffic_and_is_removed(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    emu.set_health("v2", False)
    config = deploy_config()
    plan = plan_rollout(config, platform=platform, old="v1", new="v2", image="registry.example/shop:v2")

    with pytest.raises(RolloutFailure) as failure:
        execute(plan, platform, ReleaseChecks(config, dsn=None), RunLog())

    assert isinstance(failure.value.cause, HealthError)
    assert "503" in str(failure.value)
    assert failure.value.outcome.traffic_moved is False
    assert selector_version(emu) == "v1"
    assert versions_seen(platform.live_url()) == {"v1": 12}

    report = roll_back(
        platform=platform,
        previous=Release("v1", ref=APP),
        failed_version="v2",
        traffic_moved=False,
        reason=str(failure.value),
        checks=ReleaseChecks(config, dsn=None),
        undo_migrations=list,
        budget_seconds=30,
        log=RunLog(),
    )
    assert report.error is None
    assert emu.get("deployments", NAMESPACE, "shop-v2") is None, "the aborted release is deleted"
    assert emu.get("services", NAMESPACE, "shop-preview") is None


def test_rollback_after_a_failed_verification_flips_the_selector_back(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    _deploy(platform, "v2")
    assert versions_seen(platform.live_url()) == {"v2": 12}
    emu.set_health("v2", False)
    config = deploy_config()

    report = roll_back(
        platform=platform,
        previous=Release("v1", ref=APP),
        failed_version="v2",
        traffic_moved=True,
        reason="post-switch verification failed",
        checks=ReleaseChecks(config, dsn=None),
        undo_migrations=list,
        budget_seconds=30,
        log=RunLog(),
    )

    assert report.error is None, report.error
    assert report.outcome.succeeded is True
    assert selector_version(emu) == "v1"
    assert versions_seen(platform.live_url()) == {"v1": 12}
    assert platform.live() is not None and platform.live().version == "v1"  # type: ignore[union-attr]
    assert emu.get("deployments", NAMESPACE, "shop-v2") is None


def test_retire_keeps_the_newest_previous_releases(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    for version in ("v2", "v3", "v4"):
        _deploy(platform, version)

    retired = platform.retire(1)

    assert retired == ["v2", "v1"]
    assert emu.get("deployments", NAMESPACE, "shop-v2") is None
    assert replicas(emu, "shop-v3") == 4, "the newest previous release stays for an instant rollback"
    original = emu.get("deployments", NAMESPACE, APP)
    assert original is not None, "the user's own Deployment is scaled down, never deleted"
    assert original["spec"]["replicas"] == 0
    assert "deploy-orchestrator/retired-at" in original["metadata"]["annotations"]
    assert [r.version for r in platform.releases()] == ["v4", "v3"]
    assert platform.retire(1) == []


def test_a_release_that_never_becomes_available_fails_start_naming_the_deployment(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    emu.never_ready.add("v2")
    platform = make_platform(deadline=1)

    with pytest.raises(DeployError) as error:
        platform.start("v2", "registry.example/shop:v2")

    message = str(error.value)
    assert "deployment shop-v2 in namespace prod did not roll out" in message
    assert "ProgressDeadlineExceeded" in message
    assert error.value.platform == "kubernetes" and error.value.operation == "wait for rollout"
    assert selector_version(emu) == "v1"
    assert versions_seen(platform.live_url()) == {"v1": 12}


def test_start_is_idempotent_per_version(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    first = platform.start("v2", "registry.example/shop:v2")
    generation = emu.get("deployments", NAMESPACE, "shop-v2")["metadata"]["generation"]  # type: ignore[index]

    again = platform.start("v2", "registry.example/shop:v2")

    assert again == first
    assert emu.get("deployments", NAMESPACE, "shop-v2")["metadata"]["generation"] == generation  # type: ignore[index]
    assert emu.count("POST", r".*/deployments") == 1


def test_stop_refuses_the_release_that_serves_traffic(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform()

    with pytest.raises(DeployError, match="still sends traffic to it"):
        platform.stop("v1")

    assert replicas(emu, APP) == 4


def test_a_service_without_the_app_name_is_a_clear_error(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    emu.create("services", NAMESPACE, {"metadata": {"name": "other"}, "spec": {"ports": [{"port": 80}]}})
    emu.delete("services", NAMESPACE, APP)

    with pytest.raises(DeployError, match=r"Service shop not found in namespace prod; create a Service"):
        platform.start("v2", None)


# --- regression: a Service selecting the app only must not expose a release before the switch ---


@pytest.mark.parametrize("first_weight", [100, 25])
def test_start_pins_a_service_selecting_the_app_only_to_the_live_release(
    emu: K8sEmulator, make_platform: MakePlatform, first_weight: int
) -> None:
    # As a native rolling update by earlier versions left it: the pods change version label.
    emu.set_selector(NAMESPACE, APP, {"app.kubernetes.io/name": APP})
    platform = make_platform()

    release = platform.start_sized("v2", "registry.example/shop:v2", first_weight)

    assert selector_version(emu) == "v1"
    assert emu.endpoints(NAMESPACE, APP) == {"v1": 4}, "the new pods get no traffic before the switch"
    assert versions_seen(platform.live_url()) == {"v1": 12}
    assert release.url is not None and versions_seen(release.url) == {"v2": 12}
    service = emu.get("services", NAMESPACE, APP)
    assert service is not None and service["spec"]["selector"]["app.kubernetes.io/name"] == APP
    platform.route({"v2": 100})
    assert emu.endpoints(NAMESPACE, APP) == {"v2": 4}


def test_start_refuses_when_the_service_selects_several_live_releases_alike(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    # Two Deployments of different releases both serving under a selector of the app only.
    platform = make_platform()
    platform.start("v2", "registry.example/shop:v2")
    emu.set_selector(NAMESPACE, APP, {"app.kubernetes.io/name": APP})
    before = emu.endpoints(NAMESPACE, APP)
    assert before == {"v1": 4, "v2": 4}

    with pytest.raises(DeployError) as error:
        platform.start("v3", "registry.example/shop:v3")

    message = str(error.value)
    assert "Service shop selects pods of every release of the app (releases v1, v2 serve now)" in message
    assert "route 100% to one release first" in message
    assert "kubectl patch service shop -n prod" in message and "deploy-orchestrator/version" in message
    assert emu.get("deployments", NAMESPACE, "shop-v3") is None
    assert emu.endpoints(NAMESPACE, APP) == before


# --- regression: a live release label is never rewritten with another image ---


def test_start_refuses_a_new_image_under_the_live_version_label_and_rollback_still_works(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    _deploy(platform, "v2")
    live_image = "registry.example/shop:v1"  # image=None: v2 runs the template's image
    generation = emu.get("deployments", NAMESPACE, "shop-v2")["metadata"]["generation"]  # type: ignore[index]

    with pytest.raises(DeployError) as error:
        platform.start("v2", "registry.example/shop:v2-rebuilt")

    assert str(error.value).startswith(
        f"start v2: release v2 is live with image {live_image} (Deployment shop-v2); "
        "deploy the new image registry.example/shop:v2-rebuilt under a new version label"
    )
    deployment = emu.get("deployments", NAMESPACE, "shop-v2")
    assert deployment is not None and deployment["metadata"]["generation"] == generation
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == live_image
    # A re-run with the image it runs (or none) stays idempotent.
    assert platform.start("v2", live_image).image == live_image
    assert platform.start("v2", None).image == live_image
    assert emu.get("deployments", NAMESPACE, "shop-v2")["metadata"]["generation"] == generation  # type: ignore[index]

    platform.rollback(Release("v1"))
    assert emu.endpoints(NAMESPACE, APP) == {"v1": 4}


def test_start_refuses_a_new_image_under_the_version_of_the_original_deployment(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    platform = make_platform()

    with pytest.raises(
        DeployError, match=re.escape("release v1 is live with image registry.example/shop:v1 (Deployment shop)")
    ):
        platform.start("v1", "registry.example/shop:v1-rebuilt")

    assert emu.get("deployments", NAMESPACE, "shop-v1") is None
    assert emu.endpoints(NAMESPACE, APP) == {"v1": 4}
