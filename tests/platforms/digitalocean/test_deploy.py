"""Deploys through the real pydo client against the App Platform simulator."""

from __future__ import annotations

import logging

import pytest
import requests

from orchestrator.errors import DeployError
from tests.peers.do_simulator import DoSimulator

from .conftest import MakePlatform

DIGEST = "sha256:" + "ab" * 32


def served_version(url: str) -> str:
    return requests.get(f"{url}/version", timeout=5).text


def test_blue_green_deploy_puts_image_and_health_check_in_the_spec_and_goes_live(
    do_sim: DoSimulator, do_app: str, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    assert platform.live() is not None and platform.live().version == "v1"  # type: ignore[union-attr]

    release = platform.start("v2", f"registry.digitalocean.com/acme/shop@{DIGEST}")

    service = do_sim.app_json(do_app)["spec"]["services"][0]
    assert service["image"] == {"registry_type": "DOCR", "repository": "shop", "digest": DIGEST}
    assert service["health_check"] == {
        "http_path": "/health",
        "timeout_seconds": 5,
        "period_seconds": 2,
        "failure_threshold": 3,
        "success_threshold": 1,
        "initial_delay_seconds": 0,
    }
    assert {"key": "DEPLOY_ORCHESTRATOR_VERSION", "value": "v2", "scope": "RUN_TIME", "type": "GENERAL"} in service[
        "envs"
    ]
    deployments = do_sim.deployments(do_app)
    assert [d["phase"] for d in deployments] == ["ACTIVE", "SUPERSEDED"]
    assert release.version == "v2" and release.ref == deployments[0]["id"]
    assert release.image == f"registry.digitalocean.com/acme/shop@{DIGEST}"
    assert do_sim.count("PUT") == 1
    assert served_version(platform.live_url()) == "v2"
    assert [r.version for r in platform.releases()] == ["v2", "v1"]


def test_polling_backs_off_instead_of_busy_polling(do_sim: DoSimulator, make_platform: MakePlatform) -> None:
    do_sim.phases = {"PENDING_BUILD": 0.1, "BUILDING": 1.0, "PENDING_DEPLOY": 0.1, "DEPLOYING": 0.1}
    make_platform().start("v2", "registry.digitalocean.com/acme/shop:v2")
    polls = do_sim.count("GET", r"/v2/apps/[^/]+/deployments/[^/]+")
    # The simulated deploy takes 1.3 s; polls start 20 ms after the PUT and grow to 100 ms apart
    # (busy polling would make hundreds).
    assert 3 <= polls <= 20


def test_start_is_idempotent_per_version(do_sim: DoSimulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    first = platform.start("v2", "ghcr.io/acme/shop:v2")
    again = platform.start("v2", "ghcr.io/acme/shop:v2")
    assert again.ref == first.ref
    assert do_sim.count("PUT") == 1


def test_failed_deployment_raises_with_the_log_tail_and_the_old_release_keeps_serving(
    do_sim: DoSimulator, do_app: str, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    with pytest.raises(DeployError) as caught:
        platform.start("v2", "registry.digitalocean.com/acme/shop:v2-fail")

    message = str(caught.value)
    assert caught.value.platform == "digitalocean"
    assert "failed (ERROR" in message and "previous release serving" in message
    assert "panic: container exited with code 1" in message
    assert platform.last_logs is not None and "failed to start" in platform.last_logs.tail()[-1]
    assert served_version(platform.live_url()) == "v1"
    assert platform.live().version == "v1"  # type: ignore[union-attr]
    assert do_sim.deployments(do_app)[0]["phase"] == "ERROR"


def test_app_platform_health_gate_keeps_an_unhealthy_release_out(
    do_sim: DoSimulator, make_platform: MakePlatform
) -> None:
    # The simulator gates only on a spec health check, so this fails if start() did not write one.
    do_sim.set_health("v2", False)
    platform = make_platform()
    with pytest.raises(DeployError, match="health check failed"):
        platform.start("v2", "registry.digitalocean.com/acme/shop:v2")
    assert served_version(platform.live_url()) == "v1"


def test_deadline_exceeded_names_the_phase_and_elapsed_time_and_cancels(
    do_sim: DoSimulator, do_app: str, make_platform: MakePlatform
) -> None:
    do_sim.stuck_phase = "BUILDING"
    platform = make_platform(deadline=0.6)
    with pytest.raises(DeployError) as caught:
        platform.start("v2", "registry.digitalocean.com/acme/shop:v2")
    message = str(caught.value)
    assert "still in phase BUILDING after 0." in message
    assert "deadline 0.6 s" in message and "It was cancelled" in message
    assert do_sim.deployments(do_app)[0]["phase"] == "CANCELED"
    assert do_sim.count("POST", r"/v2/apps/[^/]+/deployments/[^/]+/cancel") == 1
    assert served_version(platform.live_url()) == "v1"


def test_pinned_app_refuses_a_deploy_with_the_way_out(do_sim: DoSimulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    platform.start("v2", "registry.digitalocean.com/acme/shop:v2")
    platform.rollback(platform.releases()[1])
    with pytest.raises(DeployError, match=r"pinned .* neither committed nor reverted"):
        platform.start("v3", "registry.digitalocean.com/acme/shop:v3")
    assert do_sim.count("PUT") == 1


def test_bad_token_fails_clearly_at_once_and_never_shows_the_token(
    do_sim: DoSimulator, do_app: str, make_platform: MakePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "dop_v1_canary-5f1d2e3c4b5a69788796a5b4c3d2e1f0"
    caplog.set_level(logging.DEBUG)
    platform = make_platform(token=canary)
    with pytest.raises(DeployError) as caught:
        platform.start("v2", "registry.digitalocean.com/acme/shop:v2")

    message = str(caught.value)
    assert "rejected the API token (HTTP 401" in message and "$DIGITALOCEAN_TOKEN" in message
    assert canary not in message and canary not in repr(caught.value.__cause__)
    assert canary not in caplog.text
    assert do_sim.calls == [("GET", f"/v2/apps/{do_app}")], "no retry, nothing changed"
    assert do_sim.app_json(do_app)["spec"]["services"][0]["image"]["tag"] == "v1"


def test_the_token_is_never_logged_on_a_full_deploy(
    do_sim: DoSimulator, make_platform: MakePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    make_platform().start("v2", "registry.digitalocean.com/acme/shop:v2")
    assert "Authorization" in caplog.text, "azure-core's request log ran (else this proves nothing)"
    assert do_sim.token not in caplog.text


def test_several_services_need_a_component_name(do_sim: DoSimulator, make_platform: MakePlatform) -> None:
    from orchestrator.errors import ConfigError

    app_id = do_sim.seed_app("multi", services=("web", "api"))
    with pytest.raises(
        ConfigError, match="do_component: the app has 2 components \\(web \\(service\\), api \\(service\\)\\)"
    ):
        make_platform(app_id=app_id).start("v2", "ghcr.io/acme/api:v2")
    release = make_platform(app_id=app_id, component="api").start("v2", "ghcr.io/acme/api:v2")
    services = {s["name"]: s for s in do_sim.app_json(app_id)["spec"]["services"]}
    assert services["api"]["image"] == {"registry_type": "GHCR", "registry": "acme", "repository": "api", "tag": "v2"}
    assert services["web"]["image"]["tag"] == "v1"
    assert release.version == "v2"
