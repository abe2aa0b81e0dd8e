"""Transient failures: retried within bounds; creating calls never duplicated."""

from __future__ import annotations

import time

import pytest

from orchestrator.errors import DeployError
from orchestrator.platforms.digitalocean.api import RetryPolicy
from tests.peers.do_simulator import DoSimulator, Fault

from .conftest import FAST_RETRY, MakePlatform

APP = r"/v2/apps/[^/]+"
POLL = r"/v2/apps/[^/]+/deployments/[^/]+"


def versions(sim: DoSimulator, app_id: str) -> list[str]:
    return [d["spec"]["services"][0]["envs"][0]["value"] for d in sim.deployments(app_id)]


def test_429_storm_honours_retry_after_and_then_succeeds(do_sim: DoSimulator, make_platform: MakePlatform) -> None:
    do_sim.add_fault(Fault("GET", APP, status=429, retry_after=1, times=2))
    platform = make_platform()
    started = time.monotonic()
    live = platform.live()
    elapsed = time.monotonic() - started
    assert live is not None and live.version == "v1"
    assert do_sim.count("GET", APP) == 3
    assert 2.0 <= elapsed < 4.0, "waited the 1 s Retry-After twice, no more"


def test_429_storm_gives_up_after_three_retries(do_sim: DoSimulator, make_platform: MakePlatform) -> None:
    do_sim.add_fault(Fault("GET", APP, status=429, retry_after=0, times=None))
    with pytest.raises(DeployError, match=r"rate limited .* still failing after 4 attempts"):
        make_platform().live()
    assert do_sim.count("GET", APP) == 4


def test_a_retry_after_beyond_our_cap_fails_at_once(do_sim: DoSimulator, make_platform: MakePlatform) -> None:
    do_sim.add_fault(Fault("GET", APP, status=429, retry_after=3600, times=None))
    started = time.monotonic()
    with pytest.raises(DeployError, match="asks to wait 3600 s, more than the 60 s we wait"):
        make_platform().live()
    assert time.monotonic() - started < 2.0
    assert do_sim.count("GET", APP) == 1


def test_5xx_and_resets_while_polling_are_retried(
    do_sim: DoSimulator, do_app: str, make_platform: MakePlatform
) -> None:
    do_sim.add_fault(Fault("GET", POLL, status=503, times=2))
    do_sim.add_fault(Fault("GET", POLL, reset=True, times=1))
    release = make_platform().start("v2", "registry.digitalocean.com/acme/shop:v2")
    assert release.version == "v2"
    assert versions(do_sim, do_app) == ["v2", "v1"]


def test_a_slow_answer_times_out_and_is_retried(do_sim: DoSimulator, make_platform: MakePlatform) -> None:
    do_sim.add_fault(Fault("GET", APP, status=200, delay=1.0, after=True, times=1))
    platform = make_platform(retry=RetryPolicy(initial_wait=0.01, read_timeout=0.3, connect_timeout=1.0))
    assert platform.live() is not None
    assert do_sim.count("GET", APP) == 2


@pytest.mark.parametrize(
    "fault",
    [
        Fault("PUT", APP, status=500, after=True),
        Fault("PUT", APP, reset=True, after=True),
        Fault("PUT", APP, status=502, after=False),
    ],
    ids=["500-after-creating", "reset-after-creating", "502-before-creating"],
)
def test_an_ambiguous_failure_on_update_yields_exactly_one_deployment(
    do_sim: DoSimulator, do_app: str, make_platform: MakePlatform, fault: Fault
) -> None:
    do_sim.add_fault(fault)
    release = make_platform().start("v2", "registry.digitalocean.com/acme/shop:v2")
    assert versions(do_sim, do_app) == ["v2", "v1"], "exactly one deployment of v2"
    assert release.ref == do_sim.deployments(do_app)[0]["id"]
    # Re-sent only when the look proved the first attempt created nothing.
    assert do_sim.count("PUT") == (1 if fault.after else 2)


def test_an_ambiguous_failure_on_rollback_is_not_sent_twice(
    do_sim: DoSimulator, do_app: str, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    platform.start("v2", "registry.digitalocean.com/acme/shop:v2")
    do_sim.add_fault(Fault("POST", r"/v2/apps/[^/]+/rollback", status=500, after=True))
    platform.rollback(platform.releases()[1])
    assert do_sim.count("POST", r"/v2/apps/[^/]+/rollback") == 1
    assert [d["cause"] for d in do_sim.deployments(do_app)].count("rollback") == 1
    assert platform.live().version == "v1"  # type: ignore[union-attr]


def test_a_persistent_500_fails_with_the_operation_and_status(do_sim: DoSimulator, make_platform: MakePlatform) -> None:
    do_sim.add_fault(Fault("GET", APP, status=500, times=None))
    with pytest.raises(DeployError) as caught:
        make_platform(retry=FAST_RETRY).live()
    assert str(caught.value).startswith("get app: HTTP 500: Server Error, still failing after 4 attempts")
    assert caught.value.operation == "get app" and caught.value.platform == "digitalocean"
