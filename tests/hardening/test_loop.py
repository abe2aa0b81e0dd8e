"""The pipeline's view of hardening: Hardening(config, dsn, workspace, env, log)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.contract import (
    AgentbenchConfig,
    Artifacts,
    Credentials,
    DeployConfig,
    DeploymentConfig,
    HealthCheckConfig,
    RollbackConfig,
)
from orchestrator.hardening.loop import Hardening
from orchestrator.redaction import Secret
from orchestrator.runlog import RunLog
from tests.hardening.conftest import CANARY_TOKEN
from tests.hardening.samples import failure
from tests.peers.agentbench import AgentbenchPeer
from tests.peers.postgres import free_port


def _config(url: str, emit: bool = True) -> DeployConfig:
    return DeployConfig(
        deployment=DeploymentConfig(strategy="blue_green", platform="local"),
        artifacts=Artifacts(odoo_modules=(), migrations=()),
        health_check=HealthCheckConfig("/health", 200, 5, 3, 1),
        rollback=RollbackConfig(True, 3, 60),
        agentbench=AgentbenchConfig(url, "AGENTBENCH_TOKEN", emit, timeout_seconds=1.0),
        credentials=Credentials("DO_TOKEN", "DATABASE_URL"),
    )


ENV = {"AGENTBENCH_TOKEN": CANARY_TOKEN, "GITHUB_REPOSITORY": "acme/app", "GITHUB_RUN_ID": "5"}


def test_a_failed_run_queues_then_the_next_run_delivers_and_reports_it(
    pg_dsn: str, tmp_path: Path, agentbench: AgentbenchPeer
) -> None:
    agentbench.down()
    log = RunLog()
    log.error("health check /health answered 503")
    run = Hardening(_config(agentbench.url), Secret(pg_dsn), tmp_path, ENV, log, budget_seconds=0.3)
    assert run.deliver_pending().remaining == 0
    outcome = run.emit(failure("d-1"))
    assert (outcome.dpo_pairs_generated, outcome.delivered, outcome.queued) == (1, 0, 1)
    assert "1 pair(s) queued for the next run" in log.entries[-1].message
    assert "| 1 | 0 | 1 | - |" in run.markdown()
    run.close()

    agentbench.up()
    next_log = RunLog()
    next_run = Hardening(_config(agentbench.url), Secret(pg_dsn), tmp_path, ENV, next_log)
    backlog = next_run.deliver_pending()
    assert (backlog.delivered, backlog.remaining) == (1, 0)
    assert next_run.queued_outcome().queued == 0
    assert "Earlier runs' queue: 1 delivered now" in next_run.markdown()
    [pair] = agentbench.stored.values()
    assert pair["metadata"]["run_url"] == "https://github.com/acme/app/actions/runs/5"
    assert "error: health check /health answered 503" in pair["failure_scenario"]


def test_emit_dpo_on_failure_false_generates_nothing(pg_dsn: str, tmp_path: Path, agentbench: AgentbenchPeer) -> None:
    run = Hardening(_config(agentbench.url, emit=False), Secret(pg_dsn), tmp_path, ENV)
    assert run.emit(failure()).dpo_pairs_generated == 0
    assert agentbench.received == []


def test_without_a_token_pairs_are_stored_and_the_log_says_why(pg_dsn: str, tmp_path: Path) -> None:
    log = RunLog()
    run = Hardening(_config(f"http://127.0.0.1:{free_port()}"), Secret(pg_dsn), tmp_path, {}, log)
    outcome = run.emit(failure())
    assert (outcome.dpo_pairs_generated, outcome.queued) == (1, 1)
    assert "$AGENTBENCH_TOKEN is not set" in log.entries[0].message


def test_database_down_reports_the_fallback_file(tmp_path: Path, agentbench: AgentbenchPeer) -> None:
    agentbench.down()
    down = Secret(f"postgresql://u:p-canary-4444@127.0.0.1:{free_port()}/x")
    log = RunLog()
    outcome = Hardening(_config(agentbench.url), down, tmp_path, ENV, log, budget_seconds=0.2).emit(failure())
    assert outcome.fallback_file == str(tmp_path / ".deploy-orchestrator/outbox/pending.jsonl")
    assert any("pair(s) kept in" in e.message for e in log.entries)
