"""ReleaseChecks, the health side a rollout is given: pre-switch on the release, post-switch on the route.

Against real HTTP servers on loopback: `release` probes the release's own address (even when the
configured endpoint is an absolute public URL), runs the verification checks only when asked for
analysis, and `live` runs the verification checks through the address it is given.
"""

from __future__ import annotations

import dataclasses
import time

from orchestrator import contract
from orchestrator.health.release_checks import ReleaseChecks
from tests.peers.http import HttpPeer, Reply

HEALTH = contract.HealthCheckConfig(
    endpoint="/health", expected_status=200, timeout_seconds=2, retries=2, interval_seconds=0.01
)
VERIFY = contract.VerificationConfig(
    deadline_seconds=5,
    retries=1,
    interval_seconds=0.01,
    critical_endpoints=(contract.HttpCheck(name="checkout", path="/checkout"),),
)


def deploy_config(
    health: contract.HealthCheckConfig = HEALTH, verification: contract.VerificationConfig = VERIFY
) -> contract.DeployConfig:
    return contract.DeployConfig(
        deployment=contract.DeploymentConfig(strategy="blue_green", platform="local"),
        artifacts=contract.Artifacts(odoo_modules=(), migrations=()),
        health_check=health,
        rollback=contract.RollbackConfig(
            auto_rollback_on_failure=True, keep_previous_versions=2, max_rollback_duration_seconds=60
        ),
        agentbench=contract.AgentbenchConfig(
            url="http://127.0.0.1:9", token_env_var="AB_TOKEN", emit_dpo_on_failure=False
        ),
        credentials=contract.Credentials(do_api_token_env_var="DO_TOKEN", db_connection_env_var="DATABASE_URL"),
        verification=verification,
    )


def test_release_checks_health_only_unless_analysis_is_asked_for(http_peer: HttpPeer) -> None:
    http_peer.route("GET", "/health", Reply(200, {"ok": True}))
    http_peer.route("GET", "/checkout", Reply(503, "down"))
    checks = ReleaseChecks(deploy_config(), dsn=None)

    health_only = checks.release(http_peer.url, analysis=False)
    assert health_only.passed and health_only.reason is None
    assert [p.endpoint for p in health_only.probes] == ["/health"]
    assert http_peer.requests_to("/checkout") == []

    analysed = checks.release(http_peer.url, analysis=True)
    assert not analysed.passed
    assert analysed.probes[0].endpoint == "/health"
    assert "checkout" in (analysed.reason or "")
    assert len(http_peer.requests_to("/checkout")) == 1


def test_an_unhealthy_release_is_not_analysed(http_peer: HttpPeer) -> None:
    http_peer.route("GET", "/health", Reply(500, "boom"))
    http_peer.route("GET", "/checkout", Reply(200, "ok"))
    verdict = ReleaseChecks(deploy_config(), dsn=None).release(http_peer.url, analysis=True)
    assert not verdict.passed
    assert "not healthy after 2 attempts" in (verdict.reason or "")
    assert http_peer.requests_to("/checkout") == []


def test_an_absolute_health_endpoint_is_aimed_at_the_release_not_the_public_address(
    http_peer: HttpPeer, other_peer: HttpPeer
) -> None:
    # `other_peer` plays the public address (still the old release); `http_peer` the new release.
    health = dataclasses.replace(HEALTH, endpoint=other_peer.url + "/health?deep=1")
    http_peer.route("GET", "/health", Reply(200, {"ok": True}))
    other_peer.route("GET", "/health", Reply(500, "old release"))
    verdict = ReleaseChecks(deploy_config(health), dsn=None).release(http_peer.url, analysis=False)
    assert verdict.passed
    assert [s.path for s in http_peer.requests_to("/health")] == ["/health?deep=1"]
    assert other_peer.requests_to("/health") == []


def test_live_runs_the_verification_checks_through_the_given_address(http_peer: HttpPeer) -> None:
    http_peer.route("GET", "/health", Reply(200, {"ok": True}))
    http_peer.route("GET", "/checkout", Reply(200, "ok"))
    verdict = ReleaseChecks(deploy_config(), dsn=None).live(http_peer.url)
    assert verdict.passed and verdict.reason is None
    assert [p.endpoint for p in verdict.probes] == ["/health", "endpoint:checkout"]
    assert len(http_peer.requests_to("/checkout")) == 1


def test_release_never_runs_past_the_callers_deadline(http_peer: HttpPeer) -> None:
    http_peer.route("GET", "/health", Reply(500, "boom"))
    slow = dataclasses.replace(HEALTH, retries=50, interval_seconds=0.2)
    began = time.monotonic()
    verdict = ReleaseChecks(deploy_config(slow), dsn=None).release(http_peer.url, analysis=False, deadline=began + 0.5)
    assert not verdict.passed and "before the deadline" in (verdict.reason or "")
    assert len(verdict.probes) < 50, "50 attempts 0.2 s apart would have run 10 s"
