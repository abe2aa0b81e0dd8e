"""Building preference pairs: pure, so every rule is checked exactly."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.contract import (
    AgentbenchConfig,
    Artifacts,
    Credentials,
    DeployConfig,
    DeploymentConfig,
    HealthCheckConfig,
    HealthProbe,
    MigrationResult,
    Request,
    RollbackConfig,
    RollbackOutcome,
    RunInputs,
)
from orchestrator.errors import HealthError, OrchestratorError, RollbackError
from orchestrator.hardening.pairs import AGENT_NAME, FailureContext, build_pair, priority_of, write_trl_jsonl
from orchestrator.redaction import Secret
from tests.hardening.samples import failure, probe


def test_priority_scale_orders_failed_rollback_then_traffic_moved_then_before_traffic() -> None:
    assert priority_of(failure(rollback_failed=True, traffic_moved=True)) == "critical"
    assert priority_of(failure(rollback_failed=True, traffic_moved=False)) == "critical"
    assert priority_of(failure(traffic_moved=True, rolled_back=True)) == "high"
    assert priority_of(failure(traffic_moved=True, rolled_back=False)) == "high"
    assert priority_of(failure(traffic_moved=False, rolled_back=True)) == "medium"
    assert priority_of(failure(traffic_moved=False, rolled_back=False)) == "medium"


def test_pair_has_the_seed_fields_and_the_evidence_of_what_happened() -> None:
    ctx = failure(
        step="migrations",
        reason="V3__add_orders.sql failed: relation orders already exists",
        rolled_back=False,
        failing_probes=(),
        migrations=(MigrationResult("3", "V3__add_orders.sql", 5.0, False, error="relation orders already exists"),),
        log_excerpt=("applying V3__add_orders.sql", "ERROR: relation orders already exists"),
    )
    body = build_pair(ctx).to_json()
    assert set(body) == {
        "agent_name",
        "failure_scenario",
        "preferred_output",
        "dispreferred_output",
        "priority",
        "metadata",
    }
    assert body["agent_name"] == AGENT_NAME == "DeploymentOrchestrator"
    assert body["priority"] == "medium"
    assert "failed at step 'migrations'" in body["failure_scenario"]
    assert "migration V3__add_orders.sql (up) failed: relation orders already exists" in body["failure_scenario"]
    assert "    ERROR: relation orders already exists" in body["failure_scenario"]
    assert "V3__add_orders.sql cannot be applied" in body["preferred_output"]
    assert body["dispreferred_output"].startswith("Proceeded with v2 and failed at step 'migrations'")
    meta = body["metadata"]
    assert meta["deployment_id"] == "d-0001"
    assert meta["timestamp"] == "2026-01-01T00:00:00Z"
    assert meta["environment"] == "production"
    assert meta["kind"] == "failed_deploy"
    assert meta["migration_errors"] == [
        {"filename": "V3__add_orders.sql", "version": "3", "direction": "up", "error": "relation orders already exists"}
    ]
    json.dumps(body)  # the body is plain JSON


def test_failing_probes_give_status_codes_and_a_stop_signal_in_the_preferred_output() -> None:
    ctx = failure(failing_probes=(probe("/health", 503), probe("/api/orders", 0, ms=5000.0)))
    pair = build_pair(ctx)
    assert pair.metadata["status_codes"] == [503, 0]
    assert "- failing check: /health answered 503 in 42 ms (expected 200, got 503)" in pair.failure_scenario
    assert "/api/orders did not answer (after 5000 ms)" in pair.failure_scenario
    assert "Treat /api/orders, /health failing as a stop signal" in pair.preferred_output
    assert "Health responses: no answer, 503." in pair.dispreferred_output


def test_failed_rollback_pair_is_critical_and_names_the_rollback_error() -> None:
    ctx = failure(
        traffic_moved=True, rolled_back=False, rollback_failed=True, rollback_error="v1 answered 502 after rollback"
    )
    pair = build_pair(ctx)
    assert pair.priority == "critical"
    assert pair.metadata["kind"] == "failed_rollback"
    assert "The rollback was attempted and failed." in pair.failure_scenario
    assert "- rollback error: v1 answered 502 after rollback" in pair.failure_scenario
    assert "The rollback to v1 failed: v1 answered 502 after rollback" in pair.dispreferred_output


def test_same_failure_gives_the_same_pair_id_and_different_runs_differ() -> None:
    assert build_pair(failure("d-1")).id == build_pair(failure("d-1")).id
    assert build_pair(failure("d-1")).id != build_pair(failure("d-2")).id
    assert build_pair(failure("d-1")).id != build_pair(failure("d-1", rollback_failed=True)).id


def test_secrets_in_reasons_logs_and_probe_details_are_redacted() -> None:
    canary = Secret("pair-canary-secret-4f2a", "X").reveal()
    dsn = "postgresql://app:db-canary-pw-77@db.internal:5432/app"
    ctx = failure(
        reason=f"connect failed for {dsn} token={canary}",
        failing_probes=(
            HealthProbe("/health", 500, 3.0, False, "2026-01-01T00:00:00Z", detail=f"body mentions {canary}"),
        ),
        log_excerpt=(f"Authorization: Bearer {canary}",),
        rollback_error=f"{canary} again",
        rollback_failed=True,
    )
    pair = build_pair(ctx)
    text = json.dumps(pair.to_json()) + json.dumps(pair.to_trl())
    assert canary not in text
    assert "db-canary-pw-77" not in text
    assert "postgresql://app:***@db.internal:5432/app" in text


def test_log_excerpt_keeps_the_last_twenty_lines_and_truncates_long_ones() -> None:
    lines = [f"line {i}" for i in range(50)] + ["x" * 2000]
    pair = build_pair(failure(log_excerpt=tuple(lines)))
    assert "line 30" not in pair.failure_scenario
    assert "line 31" in pair.failure_scenario
    assert "x" * 499 + "…" in pair.failure_scenario
    assert "x" * 501 not in pair.failure_scenario


def test_trl_export_is_prompt_chosen_rejected_jsonl(tmp_path: Path) -> None:
    pairs = [build_pair(failure("d-1")), build_pair(failure("d-2", traffic_moved=True))]
    path = tmp_path / "out" / "pairs.jsonl"
    assert write_trl_jsonl(pairs, path) == 2
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [set(r) for r in records] == [{"prompt", "chosen", "rejected"}] * 2
    assert records[0]["chosen"] == pairs[0].preferred_output
    assert records[0]["rejected"] == pairs[0].dispreferred_output
    assert pairs[0].failure_scenario in records[0]["prompt"]
    assert records[0]["prompt"].startswith("You are DeploymentOrchestrator")


@dataclass
class _Release:
    version: str


@dataclass
class _State:
    """Shaped like the run's RunState (FailureContext.from_run reads it structurally)."""

    deployment_id: str = "d-9"
    previous: _Release | None = field(default_factory=lambda: _Release("v1"))
    probes: list[HealthProbe] = field(default_factory=lambda: [probe(), probe(status=200, passed=True)])
    migrations: list[MigrationResult] = field(default_factory=list)
    rollback: RollbackOutcome = field(default_factory=lambda: RollbackOutcome(triggered=False))
    error: OrchestratorError | None = None
    cause: OrchestratorError | None = None
    traffic_moved: bool = False


def _request() -> Request:
    config = DeployConfig(
        deployment=DeploymentConfig(strategy="canary", platform="local"),
        artifacts=Artifacts(odoo_modules=(), migrations=()),
        health_check=HealthCheckConfig("/health", 200, 5, 3, 1),
        rollback=RollbackConfig(True, 3, 60),
        agentbench=AgentbenchConfig("http://127.0.0.1:1", "AGENTBENCH_TOKEN", True),
        credentials=Credentials("DO_TOKEN", "DATABASE_URL"),
        environment="staging",
    )
    inputs = RunInputs("deploy", Path("/ws"), Path("/ws/c.yml"), "vr-9", "v2")
    return Request(inputs, config)


def test_from_run_reads_a_rollback_after_traffic_moved() -> None:
    state = _State(
        error=HealthError("/health answered 503", check="/health"),
        traffic_moved=True,
        rollback=RollbackOutcome(triggered=True, reason="health: /health answered 503", succeeded=True),
    )
    ctx = FailureContext.from_run(_request(), state, log_excerpt=("a line",))
    assert (ctx.step, ctx.reason, ctx.environment, ctx.strategy) == (
        "health",
        "/health answered 503",
        "staging",
        "canary",
    )
    assert (ctx.rolled_back, ctx.rollback_failed, ctx.traffic_moved) == (True, False, True)
    assert ctx.previous_version == "v1"
    assert [p.status_code for p in ctx.failing_probes] == [503]
    assert build_pair(ctx).priority == "high"


def test_from_run_after_a_failed_rollback_keeps_the_original_step_and_the_rollback_error() -> None:
    state = _State(
        error=RollbackError("v1 is unhealthy after the rollback"),
        cause=OrchestratorError("/api answered 500", step="verification"),
        traffic_moved=True,
        # The outcome's reason is only shown; the step is read from the cause, never parsed from it.
        rollback=RollbackOutcome(triggered=True, reason="a sentence: that is not a step", succeeded=False),
    )
    ctx = FailureContext.from_run(_request(), state)
    assert (ctx.step, ctx.reason) == ("verification", "verification: /api answered 500")
    assert ctx.rollback_error == "v1 is unhealthy after the rollback"
    assert (ctx.rolled_back, ctx.rollback_failed) == (False, True)
    assert build_pair(ctx).priority == "critical"
