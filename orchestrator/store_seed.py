"""Writes what the upstream agents would: validation runs, verdicts, SQLAgent records. For demos and tests only.

The deploy path never writes to the pipeline store; production stores are provisioned and written
by the ValidationAgent, the ComplianceValidator and the SQLAgent.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import psycopg2

from orchestrator.artifacts import ArtifactDigests
from orchestrator.redaction import Secret
from orchestrator.sqlagent import SQLAGENT_ID, required_records
from orchestrator.store import STORE_DDL

__all__ = ["create_store_tables", "seed_sqlagent_records", "seed_verdicts"]


def create_store_tables(dsn: str | Secret) -> None:
    """Load `schema/pipeline-store.sql` (idempotent). For demos and tests; production stores are provisioned."""
    conn = psycopg2.connect(dsn.reveal() if isinstance(dsn, Secret) else dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(STORE_DDL.read_text())
    finally:
        conn.close()


def seed_verdicts(
    dsn: str | Secret,
    run_id: str,
    digests: ArtifactDigests,
    *,
    status: str = "passed",
    verdict: str | None = "compliant",
    agent_id: str = "agent_005",
    validator_id: str = "agent_002",
    finished_at: datetime | None = None,
    decided_at: datetime | None = None,
    verdict_digests: ArtifactDigests | None = None,
    verdict_id: str | None = None,
) -> str | None:
    """For demos and tests: write what the upstream agents would, a validation run and its verdict.

    Creates the tables if needed, inserts (or replaces) the run with `digests`, and, unless
    `verdict` is None, a verdict approving `verdict_digests` (default: the same digests).
    Returns the verdict id (None without a verdict).
    """
    now = datetime.now(UTC)
    create_store_tables(dsn)
    conn = psycopg2.connect(dsn.reveal() if isinstance(dsn, Secret) else dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO validation_runs (id, status, agent_id, artifact_digests, created_at, finished_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, "
                "agent_id = EXCLUDED.agent_id, artifact_digests = EXCLUDED.artifact_digests, "
                "created_at = EXCLUDED.created_at, finished_at = EXCLUDED.finished_at",
                (run_id, status, agent_id, json.dumps(digests.to_dict()), finished_at or now, finished_at or now),
            )
            if verdict is None:
                return None
            verdict_id = verdict_id or str(uuid.uuid4())
            cur.execute(
                "INSERT INTO compliance_verdicts "
                "(id, validation_run_id, validator_id, verdict, artifact_digests, decided_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    verdict_id,
                    run_id,
                    validator_id,
                    verdict,
                    json.dumps((verdict_digests or digests).to_dict()),
                    decided_at or now,
                ),
            )
        return verdict_id
    finally:
        conn.close()


def seed_sqlagent_records(
    dsn: str | Secret,
    digests: ArtifactDigests,
    *,
    sqlagent_run_id: str,
    agent_id: str = SQLAGENT_ID,
    recorded_at: datetime | None = None,
) -> list[str]:
    """For demos and tests: the SQLAgent's record of every `V` file in `digests` (with its undo), as one run.

    Creates the tables if needed; a repeat for the same run and file replaces the record.
    Returns the record ids.
    """
    create_store_tables(dsn)
    conn = psycopg2.connect(dsn.reveal() if isinstance(dsn, Secret) else dsn)
    ids: list[str] = []
    try:
        with conn, conn.cursor() as cur:
            for record in required_records(digests):
                cur.execute(
                    "INSERT INTO sqlagent_migrations (id, sqlagent_run_id, agent_id, filename, version, sha256,"
                    " undo_filename, undo_sha256, recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (sqlagent_run_id, filename) DO UPDATE SET agent_id = EXCLUDED.agent_id,"
                    " version = EXCLUDED.version, sha256 = EXCLUDED.sha256, undo_filename = EXCLUDED.undo_filename,"
                    " undo_sha256 = EXCLUDED.undo_sha256, recorded_at = EXCLUDED.recorded_at RETURNING id",
                    (
                        str(uuid.uuid4()),
                        sqlagent_run_id,
                        agent_id,
                        record.filename,
                        record.version,
                        record.sha256,
                        record.undo_filename,
                        record.undo_sha256,
                        recorded_at or datetime.now(UTC),
                    ),
                )
                row = cur.fetchone()
                ids.append(str(row[0]) if row else "")
        return ids
    finally:
        conn.close()
