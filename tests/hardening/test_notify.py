"""Team webhook and on-call paging against real local HTTP servers."""

from __future__ import annotations

import logging

import pytest

from orchestrator.contract import NotificationsConfig
from orchestrator.notify import Notifier, run_url
from orchestrator.redaction import install_filter
from tests.hardening.samples import result
from tests.peers.http import HttpPeer, Reply

HOOK_PATH = "/services/T000/B000/hook-canary-secret-path-6d"
ACTIONS_ENV = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/app", "GITHUB_RUN_ID": "77"}


def _notifier(peer: HttpPeer, budget: float = 3.0, **config: object) -> Notifier:
    env = {"TEAM_WEBHOOK": peer.url + HOOK_PATH, "PD_KEY": "pd-routing-key-canary-1e", **ACTIONS_ENV}
    settings = NotificationsConfig(
        webhook_url_env_var="TEAM_WEBHOOK",
        paging_url=peer.url + "/v2/enqueue",
        paging_routing_key_env_var="PD_KEY",
        timeout_seconds=1.0,
        **config,  # type: ignore[arg-type]
    )
    return Notifier(settings, env, budget_seconds=budget, backoff_initial=0.02)


def test_run_url_is_built_from_the_runner_variables() -> None:
    assert run_url(ACTIONS_ENV) == "https://github.com/acme/app/actions/runs/77"
    assert run_url({}) is None


def test_webhook_payload_is_slack_compatible_with_versions_duration_status_and_link(http_peer: HttpPeer) -> None:
    http_peer.route("POST", HOOK_PATH, Reply(200, "ok"))
    assert _notifier(http_peer).announce(result("rolled_back"), environment="production")
    [seen] = http_peer.requests_to(HOOK_PATH)
    body = seen.json()
    assert body["text"] == ":leftwards_arrow_with_hook: Deploy of v2 to production was rolled back (12.5s)"
    assert [b["type"] for b in body["blocks"]] == ["section", "section", "section", "context"]
    fields = [f["text"] for f in body["blocks"][1]["fields"]]
    assert fields[:4] == ["*Status*\nrolled_back", "*New version*\nv2", "*Previous version*\nv1", "*Duration*\n12.5s"]
    assert "Rollback done: health: /health answered 503" in body["blocks"][2]["text"]["text"]
    assert body["blocks"][3]["elements"][0]["text"] == "<https://github.com/acme/app/actions/runs/77|Workflow run>"


def test_statuses_not_listed_in_on_are_not_announced(http_peer: HttpPeer) -> None:
    http_peer.route("POST", HOOK_PATH, Reply(200, "ok"))
    assert not _notifier(http_peer, on=frozenset({"failed"})).announce(result("success"))
    assert http_peer.seen == []


def test_webhook_is_retried_with_backoff_and_honours_retry_after(http_peer: HttpPeer) -> None:
    http_peer.route("POST", HOOK_PATH, Reply(200, "ok"))
    http_peer.faults = [Reply(500), Reply(429, headers={"Retry-After": "1"}), Reply(close=True)]
    assert _notifier(http_peer).announce(result("failed"))
    assert len(http_peer.requests_to(HOOK_PATH)) == 4


def test_webhook_failure_is_logged_never_raised_and_never_shows_the_url(
    http_peer: HttpPeer, caplog: pytest.LogCaptureFixture
) -> None:
    http_peer.route("POST", HOOK_PATH, Reply(503))
    # As the CLI does for its handler: the redaction filter is the second defence (urllib3 logs
    # request paths at DEBUG, and a webhook's path is its secret).
    install_filter(caplog.handler)
    with caplog.at_level(logging.DEBUG):
        assert not _notifier(http_peer, budget=0.5).announce(result("failed"))
        http_peer.close()
        assert not _notifier(http_peer, budget=0.5).announce(result("failed"))
    assert "team notification (webhook from $TEAM_WEBHOOK) not sent: HTTP 503" in caplog.text
    assert "not sent: ConnectionError" in caplog.text
    assert "hook-canary-secret-path-6d" not in caplog.text


def test_a_failed_rollback_pages_with_a_dedup_key_per_deployment(http_peer: HttpPeer) -> None:
    http_peer.route("POST", "/v2/enqueue", Reply(202, {"status": "success", "dedup_key": "x"}))
    failed = result("failed", rollback_failed=True, deployment_id="d-77")
    notifier = _notifier(http_peer)
    assert notifier.page(failed, "v1 is unhealthy after the rollback")
    assert notifier.page(failed, "v1 is unhealthy after the rollback")
    first, second = (s.json() for s in http_peer.requests_to("/v2/enqueue"))
    assert first["dedup_key"] == second["dedup_key"] == "deploy-orchestrator/d-77"
    assert first["routing_key"] == "pd-routing-key-canary-1e"
    assert first["event_action"] == "trigger"
    payload = first["payload"]
    assert payload["severity"] == "critical"
    assert payload["source"] == "deploy-orchestrator/local"
    assert payload["summary"] == "Rollback of v2 to v1 failed: v1 is unhealthy after the rollback"
    details = payload["custom_details"]
    assert details["deployment_id"] == "d-77"
    assert details["failing_checks"] == [{"endpoint": "/health", "status_code": 503, "response_time_ms": 42.0}]
    assert details["run_url"] == "https://github.com/acme/app/actions/runs/77"
    assert first["links"] == [{"href": "https://github.com/acme/app/actions/runs/77", "text": "Workflow run"}]


def test_paging_is_retried_and_a_missing_routing_key_is_reported(
    http_peer: HttpPeer, caplog: pytest.LogCaptureFixture
) -> None:
    http_peer.route("POST", "/v2/enqueue", Reply(202, {"status": "success"}))
    http_peer.faults = [Reply(502), Reply(429, headers={"Retry-After": "0"})]
    assert _notifier(http_peer).page(result("failed", rollback_failed=True), "boom")
    assert len(http_peer.requests_to("/v2/enqueue")) == 3
    settings = NotificationsConfig(paging_url=http_peer.url + "/v2/enqueue", paging_routing_key_env_var="PD_KEY")
    with caplog.at_level(logging.WARNING):
        assert not Notifier(settings, {}).page(result("failed", rollback_failed=True), "boom")
    assert "$PD_KEY is not set: not paged" in caplog.text
