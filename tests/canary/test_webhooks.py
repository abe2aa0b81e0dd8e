"""Phase webhooks against a real local HTTP server that approves, rejects, hangs and answers 500:
each POST signed with HMAC-SHA256 under the named variable's key, which never reaches a log."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from orchestrator.canary.webhooks import SIGNATURE_HEADER, PhaseHooks
from orchestrator.contract.canary import Webhook
from orchestrator.errors import ConfigError, HealthError
from orchestrator.runlog import RunLog
from tests.peers.http import HttpPeer, Reply

KEY = "hmac-key-canary-5f2e91"
ENV = {"HOOK_KEY": KEY}


def hook(peer: HttpPeer, **overrides: object) -> Webhook:
    fields: dict[str, object] = {
        "name": "gate",
        "url": f"{peer.url}/hook",
        "phases": ("confirm-promotion", "rollback"),
        "secret_env": "HOOK_KEY",
        "timeout_seconds": 2.0,
    }
    fields.update(overrides)
    return Webhook(**fields)  # type: ignore[arg-type]


def logged(log: RunLog) -> str:
    return "\n".join(e.message for e in log.entries)


def test_an_approving_hook_gets_a_signed_post_with_the_phase(http_peer: HttpPeer) -> None:
    http_peer.route("POST", "/hook", Reply(200, "ok"))
    log = RunLog()
    hooks = PhaseHooks([hook(http_peer)], ENV, log, context={"deployment_id": "d-1"})

    hooks.phase("confirm-promotion", {"version": "v2", "weight": None})
    hooks.phase("pre-rollout", {"version": "v2"})  # not one of its phases: not sent

    (seen,) = http_peer.requests_to("/hook")
    expected = "sha256=" + hmac.new(KEY.encode(), seen.body, hashlib.sha256).hexdigest()
    assert seen.headers[SIGNATURE_HEADER.lower()] == expected
    doc = seen.json()
    assert (doc["phase"], doc["hook"], doc["version"], doc["deployment_id"]) == (
        "confirm-promotion",
        "gate",
        "v2",
        "d-1",
    )
    assert KEY not in seen.body.decode() and KEY not in logged(log)
    assert [(a.phase, a.approved, a.status) for a in hooks.answers] == [("confirm-promotion", True, 200)]


def test_a_rejecting_hook_aborts_and_says_what_it_answered(http_peer: HttpPeer) -> None:
    http_peer.route("POST", "/hook", Reply(403, "not during the freeze"))
    hooks = PhaseHooks([hook(http_peer)], ENV, RunLog())

    with pytest.raises(HealthError, match=r"webhook gate rejected confirm-promotion: HTTP 403: not during the freeze"):
        hooks.phase("confirm-promotion", {})


def test_a_hook_that_hangs_past_its_timeout_is_a_rejection(http_peer: HttpPeer) -> None:
    http_peer.route("POST", "/hook", Reply(200, "late", delay=3.0))
    hooks = PhaseHooks([hook(http_peer, timeout_seconds=0.3)], ENV, RunLog())

    began = time.monotonic()
    with pytest.raises(HealthError, match=r"rejected confirm-promotion: no answer within 0.3 s"):
        hooks.phase("confirm-promotion", {})
    assert time.monotonic() - began < 2.5, "the timeout bounds the wait, not the hook"


def test_a_holding_hook_asks_again_after_a_500_until_it_approves(http_peer: HttpPeer) -> None:
    http_peer.faults += [Reply(500, "busy"), Reply(500, "busy")]
    http_peer.route("POST", "/hook", Reply(204))
    log = RunLog()
    hooks = PhaseHooks([hook(http_peer, on_reject="hold", retry_seconds=0.05, hold_seconds=30)], ENV, log)

    hooks.phase("confirm-promotion", {})

    assert len(http_peer.requests_to("/hook")) == 3
    assert hooks.answers[-1].approved and hooks.answers[-1].attempts == 3
    assert "webhook gate holds confirm-promotion (HTTP 500: busy)" in logged(log)


def test_a_hold_that_runs_out_aborts(http_peer: HttpPeer) -> None:
    http_peer.route("POST", "/hook", Reply(500, "down"))
    hooks = PhaseHooks([hook(http_peer, on_reject="hold", retry_seconds=0.05, hold_seconds=0.2)], ENV, RunLog())

    with pytest.raises(HealthError, match=r"rejected confirm-promotion after holding \d+ attempts: HTTP 500: down"):
        hooks.phase("confirm-promotion", {})
    assert len(http_peer.requests_to("/hook")) >= 2


def test_rollback_and_non_gating_hooks_never_stop_anything(http_peer: HttpPeer) -> None:
    http_peer.route("POST", "/hook", Reply(500, "down"))
    hooks = PhaseHooks([hook(http_peer), hook(http_peer, name="told", gating=False)], ENV, RunLog())

    hooks.phase("rollback", {"reason": "analysis failed"})
    assert [(a.hook, a.approved) for a in hooks.answers] == [("gate", False), ("told", False)]


def test_a_named_secret_variable_that_is_unset_is_a_config_error(http_peer: HttpPeer) -> None:
    with pytest.raises(ConfigError) as caught:
        PhaseHooks([hook(http_peer)], {}, RunLog())
    assert caught.value.problems == (
        "deployment_config.canary.webhooks[0].secret_env: $HOOK_KEY is not set; export the HMAC key under that "
        "name, or name the variable that holds it",
    )
