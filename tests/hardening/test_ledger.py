"""The ledger against a real PostgreSQL: deployment_log written at start and end, lineage per deploy."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from orchestrator.contract import (
    AgentbenchConfig,
    Artifacts,
    Credentials,
    DeployConfig,
    DeploymentConfig,
    HealthCheckConfig,
    LedgerConfig,
    Request,
    RollbackConfig,
    RunInputs,
)
from orchestrator.ledger import Ledger, LineageLink, open_ledger
from orchestrator.redaction import Secret
from tests.hardening.samples import result
from tests.peers.postgres import free_port


def _request(environment: str = "production") -> Request:
    config = DeployConfig(
        deployment=DeploymentConfig(strategy="blue_green", platform="local"),
        artifacts=Artifacts(odoo_modules=(), migrations=()),
        health_check=HealthCheckConfig("/health", 200, 5, 3, 1),
        rollback=RollbackConfig(True, 3, 60),
        agentbench=AgentbenchConfig("http://127.0.0.1:1", "AGENTBENCH_TOKEN", True),
        credentials=Credentials("DO_TOKEN", "DATABASE_URL"),
        environment=environment,
    )
    return Request(RunInputs("deploy", Path("/ws"), Path("/ws/c.yml"), "vr-42", "v2"), config)


def _row(dsn: str, table: str, deployment_id: str, schema: str = "public") -> dict[str, Any]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {schema}.{table} WHERE deployment_id = %s", (deployment_id,))
        row = cur.fetchone()
        assert row is not None, f"no {table} row for {deployment_id}"
        return dict(zip([d[0] for d in cur.description], row, strict=True))


GATES = {
    "verdict_id": "cv-7",
    "digests": {"migrations": {}, "modules": {}, "image": None},
}
ARTIFACTS = {
    "migrations": {"V3__add_orders.sql": "sha256:aa"},
    "modules": {"addons/sale_ext": "tree:bb"},
    "image": "ghcr.io/acme/app@sha256:cc",
    "image_pinned": True,
}


def test_a_run_is_visible_as_in_progress_from_its_start(pg_dsn: str) -> None:
    ledger = Ledger(Secret(pg_dsn))
    assert ledger.start("d-1", _request(), previous_version="v1", artifact_digests={"image": "sha256:cc"})
    assert ledger.step("d-1", "migrations")
    row = _row(pg_dsn, "deployment_log", "d-1")
    assert (row["status"], row["current_step"], row["environment"], row["new_version"]) == (
        "in_progress",
        "migrations",
        "production",
        "v2",
    )
    assert row["finished_at"] is None
    assert row["artifact_digests"] == {"image": "sha256:cc"}


def test_finish_completes_the_row_with_every_output_field_and_the_lineage(pg_dsn: str) -> None:
    ledger = Ledger(Secret(pg_dsn))
    ledger.start("d-1", _request(), run_url="https://github.com/acme/app/actions/runs/9")
    done = result("rolled_back", deployment_id="d-1", extras=(("artifacts", ARTIFACTS), ("gates", GATES)))
    assert ledger.finish(done)
    row = _row(pg_dsn, "deployment_log", "d-1")
    assert row["status"] == "rolled_back"
    assert row["rolled_back"] is True
    assert row["environment"] == "production"  # kept from start
    assert row["run_url"] == "https://github.com/acme/app/actions/runs/9"
    assert row["result"] == done.to_dict()
    assert row["health_checks"] == done.to_dict()["health_checks"]
    assert row["migrations_applied"][0]["filename"] == "V3__add_orders.sql"
    assert row["rollback"]["duration_seconds"] == 3.25
    assert row["deployment_details"]["duration_seconds"] == 12.5
    assert (row["failed_step"], row["exit_code"], row["current_step"]) == ("health", 1, "done")
    assert row["artifact_digests"]["image"] == "ghcr.io/acme/app@sha256:cc"
    assert row["finished_at"] is not None
    lineage = _row(pg_dsn, "pipeline_lineage", "d-1")
    assert lineage["validation_run_id"] == "vr-42"
    assert lineage["compliance_verdict_id"] == "cv-7"
    assert lineage["migration_digests"] == {"V3__add_orders.sql": "sha256:aa"}
    assert lineage["module_digests"] == {"addons/sale_ext": "tree:bb"}
    assert lineage["image_digest"] == "ghcr.io/acme/app@sha256:cc"
    assert lineage["outcome"] == "rolled_back"


def test_a_refused_deploy_is_recorded_as_failed_with_its_reason(pg_dsn: str) -> None:
    refused = result(
        "failed",
        deployment_id="d-r",
        error="compliance verdict for vr-42 is non_compliant",
        extras=(("refused", {"gate": "compliance", "reason": "compliance verdict for vr-42 is non_compliant"}),),
    )
    assert Ledger(Secret(pg_dsn)).finish(refused)
    row = _row(pg_dsn, "deployment_log", "d-r")
    assert (row["status"], row["refused_reason"]) == ("failed", "compliance verdict for vr-42 is non_compliant")
    assert _row(pg_dsn, "pipeline_lineage", "d-r")["outcome"] == "refused"


def test_record_lineage_is_idempotent_and_updates_the_outcome(pg_dsn: str) -> None:
    ledger = Ledger(Secret(pg_dsn))
    link = LineageLink("d-2", "vr-1", "in_progress", compliance_verdict_id="cv-1", image_digest="sha256:1")
    assert ledger.record_lineage(link)
    assert ledger.record_lineage(LineageLink("d-2", "vr-1", "success", compliance_verdict_id="cv-1"))
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT outcome FROM pipeline_lineage WHERE deployment_id = 'd-2'")
        assert cur.fetchall() == [("success",)]


def test_last_module_digests_come_from_the_newest_successful_deploy_of_the_environment(pg_dsn: str) -> None:
    ledger = Ledger(Secret(pg_dsn))
    assert ledger.last_module_digests() == {}
    for deployment_id, status, env, digest in [
        ("d-a", "success", "production", "tree:old"),
        ("d-b", "success", "staging", "tree:staging"),
        ("d-c", "rolled_back", "production", "tree:bad"),
    ]:
        ledger.start(deployment_id, _request(env))
        modules = {**ARTIFACTS, "modules": {"addons/sale_ext": digest}}
        ledger.finish(result(status, deployment_id=deployment_id, extras=(("artifacts", modules), ("gates", GATES))))
    assert ledger.last_module_digests("production") == {"addons/sale_ext": "tree:old"}
    assert ledger.last_module_digests("staging") == {"addons/sale_ext": "tree:staging"}


def test_tables_can_live_in_a_configured_schema(pg_dsn: str) -> None:
    ledger = Ledger(Secret(pg_dsn), schema="deploy_ledger")
    assert ledger.start("d-s", _request())
    assert _row(pg_dsn, "deployment_log", "d-s", schema="deploy_ledger")["status"] == "in_progress"


def test_an_unusable_schema_name_is_refused_with_the_fix() -> None:
    with pytest.raises(Exception, match="plain SQL identifier"):
        Ledger(Secret("postgresql://x@127.0.0.1/x"), schema="public; drop table x")


def test_database_down_is_logged_with_the_password_masked_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    dsn = Secret(f"postgresql://orchestrator:ledger-canary-pw-31@127.0.0.1:{free_port()}/ledger")
    ledger = Ledger(dsn)
    with caplog.at_level(logging.DEBUG):
        assert ledger.start("d-x", _request()) is False
        assert ledger.finish(result()) is False
        assert ledger.last_module_digests() == {}
    assert "ledger-canary-pw-31" not in caplog.text
    assert "postgresql://orchestrator:***@127.0.0.1" in caplog.text


def test_open_ledger_is_none_without_a_dsn_or_when_disabled(pg_dsn: str) -> None:
    assert open_ledger(None, LedgerConfig()) is None
    assert open_ledger(Secret(pg_dsn), LedgerConfig(enabled=False)) is None
    assert isinstance(open_ledger(Secret(pg_dsn), LedgerConfig()), Ledger)


def test_two_runs_creating_the_tables_at_once_both_succeed(pg_dsn: str) -> None:
    import threading

    results: list[bool] = []
    barrier = threading.Barrier(4)

    def run(i: int) -> None:
        barrier.wait()
        results.append(Ledger(Secret(pg_dsn)).start(f"d-{i}", _request()))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 4
