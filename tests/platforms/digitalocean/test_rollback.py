"""App Platform's rollback API: validate, roll back (pinned), then commit or revert."""

from __future__ import annotations

import pytest
import requests

from orchestrator.errors import DeployError
from tests.peers.do_simulator import DoSimulator, Fault

from .conftest import MakePlatform

ROLLBACK_CALLS = r"/v2/apps/[^/]+/rollback(/.*)?"


def get(url: str, path: str) -> requests.Response:
    return requests.get(f"{url}{path}", timeout=5)


def deployed_v2(make_platform: MakePlatform) -> object:
    platform = make_platform()
    platform.start("v2", "registry.digitalocean.com/acme/shop:v2")
    return platform


def rollback_calls(sim: DoSimulator) -> list[str]:
    return [p.rsplit("/", 1)[-1] for m, p in sim.calls if m == "POST" and "/rollback" in p]


def test_rollback_after_a_failed_verification_then_commit(
    do_sim: DoSimulator, do_app: str, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    platform.start("v2", "registry.digitalocean.com/acme/shop:v2")
    do_sim.set_health("v2", False)
    url = platform.live_url()
    assert get(url, "/health").status_code == 503, "verification sees the new release failing"

    previous = platform.releases()[1]
    assert previous.version == "v1"
    platform.rollback(previous)

    assert get(url, "/version").text == "v1" and get(url, "/health").status_code == 200
    assert do_sim.app_json(do_app).get("pinned_deployment"), "App Platform pins the app until we decide"
    platform.confirm_rollback(healthy=True)

    assert "pinned_deployment" not in do_sim.app_json(do_app)
    assert rollback_calls(do_sim) == ["validate", "rollback", "commit"]
    assert platform.live().version == "v1"  # type: ignore[union-attr]


def test_revert_when_the_old_release_fails_its_recheck_too(
    do_sim: DoSimulator, do_app: str, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    platform.start("v2", "registry.digitalocean.com/acme/shop:v2")
    platform.rollback(platform.releases()[1])
    do_sim.set_health("v1", False)
    assert get(platform.live_url(), "/health").status_code == 503

    platform.confirm_rollback(healthy=False)

    assert rollback_calls(do_sim) == ["validate", "rollback", "revert"]
    assert "pinned_deployment" not in do_sim.app_json(do_app)
    assert get(platform.live_url(), "/version").text == "v2"


def test_refused_rollback_raises_with_app_platforms_reason_and_changes_nothing(
    do_sim: DoSimulator, do_app: str, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    platform.start("v2", "registry.digitalocean.com/acme/shop:v2")
    do_sim.rollback_refusal = (
        "exceeded_revision_limit",
        'the deployment is past the maximum historical revision limit of 0 for the "starter" app tier',
    )
    with pytest.raises(DeployError) as caught:
        platform.rollback(platform.releases()[1])
    message = str(caught.value)
    assert "refuses the rollback" in message
    assert "exceeded_revision_limit: the deployment is past the maximum historical revision limit of 0" in message
    assert "warning image_source_missing_digest" in message
    assert caught.value.operation == "validate rollback"
    assert rollback_calls(do_sim) == ["validate"]
    assert get(platform.live_url(), "/version").text == "v2"


def test_rollback_while_pinned_is_refused_by_validation(do_sim: DoSimulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    platform.start("v2", "registry.digitalocean.com/acme/shop:v2")
    v1 = platform.releases()[1]
    platform.rollback(v1)
    with pytest.raises(DeployError, match="app_pinned"):
        platform.rollback(v1)


def test_confirm_without_a_pinned_rollback_does_nothing(do_sim: DoSimulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    platform.confirm_rollback(healthy=True)
    platform.confirm_rollback(healthy=False)
    assert rollback_calls(do_sim) == []


def test_commit_settles_when_get_app_never_shows_pinned_deployment(
    do_sim: DoSimulator, do_app: str, make_platform: MakePlatform
) -> None:
    do_sim.omit_pinned = True
    platform = make_platform()
    platform.start("v2", "registry.digitalocean.com/acme/shop:v2")
    platform.rollback(platform.releases()[1])
    assert "pinned_deployment" not in do_sim.app_json(do_app)

    platform.confirm_rollback(healthy=True)

    assert rollback_calls(do_sim) == ["validate", "rollback", "commit"]
    assert do_sim.apps[do_app].pinned is None, "the app is no longer pinned"
    platform.start("v3", "registry.digitalocean.com/acme/shop:v3")
    assert get(platform.live_url(), "/version").text == "v3"


def test_revert_settles_when_get_app_never_shows_pinned_deployment(
    do_sim: DoSimulator, do_app: str, make_platform: MakePlatform
) -> None:
    do_sim.omit_pinned = True
    platform = make_platform()
    platform.start("v2", "registry.digitalocean.com/acme/shop:v2")
    platform.rollback(platform.releases()[1])

    platform.confirm_rollback(healthy=False)

    assert rollback_calls(do_sim) == ["validate", "rollback", "revert"]
    assert do_sim.apps[do_app].pinned is None
    assert get(platform.live_url(), "/version").text == "v2"


def test_a_rollback_deployment_that_fails_is_reverted_without_pinned_deployment(
    do_sim: DoSimulator, do_app: str, make_platform: MakePlatform
) -> None:
    do_sim.omit_pinned = True
    platform = make_platform()
    platform.start("v2", "registry.digitalocean.com/acme/shop:v2")
    do_sim.fail_next_deploy = "container exited with code 137 (out of memory)"
    with pytest.raises(DeployError, match="out of memory"):
        platform.rollback(platform.releases()[1])
    assert do_sim.apps[do_app].pinned is not None, "App Platform pinned the app to the failed rollback"

    platform.confirm_rollback(healthy=False)

    assert rollback_calls(do_sim) == ["validate", "rollback", "revert"]
    assert do_sim.apps[do_app].pinned is None
    assert get(platform.live_url(), "/version").text == "v2"
    platform.start("v3", "registry.digitalocean.com/acme/shop:v3")


def test_a_commit_that_went_through_but_answered_500_is_settled(
    do_sim: DoSimulator, do_app: str, make_platform: MakePlatform
) -> None:
    do_sim.omit_pinned = True
    platform = make_platform()
    platform.start("v2", "registry.digitalocean.com/acme/shop:v2")
    platform.rollback(platform.releases()[1])
    do_sim.add_fault(Fault("POST", r".*/rollback/commit", status=500, after=True))

    platform.confirm_rollback(healthy=True)

    assert rollback_calls(do_sim) == ["validate", "rollback", "commit", "commit"]
    assert do_sim.apps[do_app].pinned is None
    assert get(platform.live_url(), "/version").text == "v1"
