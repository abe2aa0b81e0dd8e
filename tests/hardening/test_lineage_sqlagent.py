"""Lineage names the SQLAgent runs beside the validation run and the verdict, also in a ledger created before."""

from __future__ import annotations

import psycopg2

from orchestrator.contract import MigrationProvenance
from orchestrator.ledger import Ledger, LineageLink
from orchestrator.redaction import Secret
from tests.hardening.samples import result

PROVENANCE = {
    "V1__a.sql": {
        "sha256": "a" * 64,
        "sqlagent_run_id": "sqlagent-9",
        "agent_id": "agent_004",
        "recorded_at": "2026-03-02T09:00:00+00:00",
        "record_id": "r-1",
    }
}
GATES = {"verdict_id": "cv-1", "sqlagent": {"sqlagent_run_ids": ["sqlagent-9"], "files": PROVENANCE}}


def _lineage(dsn: str, deployment_id: str) -> tuple[object, ...]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT validation_run_id, compliance_verdict_id, sqlagent_run_ids, migration_provenance"
            " FROM pipeline_lineage WHERE deployment_id = %s",
            (deployment_id,),
        )
        row = cur.fetchone()
    conn.close()
    assert row is not None
    return tuple(row)


def test_the_lineage_of_a_deploy_names_its_sqlagent_runs(pg_dsn: str) -> None:
    done = result("success", deployment_id="d-1", extras=(("gates", GATES),))
    link = LineageLink.from_result(done)
    assert link.sqlagent_run_ids == ("sqlagent-9",)
    assert Ledger(Secret(pg_dsn)).finish(done)
    assert _lineage(pg_dsn, "d-1")[1:] == ("cv-1", ["sqlagent-9"], PROVENANCE)


def test_a_ledger_created_before_the_sqlagent_columns_gets_them(pg_dsn: str) -> None:
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        Ledger(Secret(pg_dsn)).record_lineage(LineageLink("d-0", "vr-0", "success"))
        cur.execute("ALTER TABLE pipeline_lineage DROP COLUMN sqlagent_run_ids, DROP COLUMN migration_provenance")
    conn.close()
    done = result("success", deployment_id="d-2", extras=(("gates", GATES),))
    assert Ledger(Secret(pg_dsn)).finish(done)
    assert _lineage(pg_dsn, "d-2")[2] == ["sqlagent-9"]
    assert _lineage(pg_dsn, "d-0")[2:] == ([], {})


def test_the_lineage_keeps_each_record_a_result_only_counts(pg_dsn: str) -> None:
    counted = {"verdict_id": "cv-1", "sqlagent": {"sqlagent_run_ids": ["sqlagent-9"], "files_count": 1}}
    done = result("success", deployment_id="d-3", extras=(("gates", counted),))
    records = {name: MigrationProvenance(**fields) for name, fields in PROVENANCE.items()}
    assert Ledger(Secret(pg_dsn)).finish(done, provenance=records)
    assert _lineage(pg_dsn, "d-3")[1:] == ("cv-1", ["sqlagent-9"], PROVENANCE)
