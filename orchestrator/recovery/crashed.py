"""The ledger side of recovery: rows of runs that died, checkpoints a run leaves for its recoverer,
and settling a crashed row.

A crashed run is a `deployment_log` row still `in_progress` whose run no longer holds its liveness
lock (liveness.py), for this environment and platform, in a mode that touches production (deploy,
rollback, recover). Its `current_step` says how far it got; the checkpoints say what a recoverer
needs beyond that: the artifact digests its gates approved (to check the undo scripts against) and,
for a manual rollback, the release it was returning to.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg2
from psycopg2 import sql

from orchestrator.ledger.database import LedgerError, check_schema_name, connect, ensure_tables
from orchestrator.recovery.liveness import is_alive
from orchestrator.redaction import Secret, redact

__all__ = ["CrashedRun", "end_sessions", "find_crashed", "has_pair", "note", "require", "settle"]

_MODES = ("deploy", "rollback", "recover")
_SESSION_GONE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class CrashedRun:
    deployment_id: str
    mode: str
    new_version: str | None
    previous_version: str | None
    current_step: str | None
    validation_run_id: str | None = None
    strategy: str | None = None
    artifact_digests: Mapping[str, Any] = field(default_factory=dict)

    @property
    def migration_digests(self) -> dict[str, str]:
        """Migration file name -> sha256, as its gates approved them."""
        files = self.artifact_digests.get("migrations") or {}
        return {str(path).rsplit("/", 1)[-1]: str(digest) for path, digest in dict(files).items()}


def _table(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(check_schema_name(schema)), sql.Identifier(name))


def _run(dsn: Secret, schema: str, what: str, query: sql.Composable, params: tuple[Any, ...]) -> list[Any]:
    conn = connect(dsn)
    try:
        ensure_tables(conn, schema)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(query, params)
            return list(cur.fetchall()) if cur.description else []
    except psycopg2.Error as exc:
        raise LedgerError(f"recovery: {what} failed: {redact(str(exc)).strip()}") from None
    finally:
        conn.close()


def find_crashed(
    dsn: Secret, *, schema: str, environment: str, platform: str, exclude: str, modes: tuple[str, ...] = _MODES
) -> list[CrashedRun]:
    """Crashed runs in `modes` on this target, oldest first. Raises LedgerError."""
    query = sql.SQL(
        "SELECT deployment_id, mode, new_version, previous_version, current_step, validation_run_id, strategy,"
        " artifact_digests FROM {} WHERE status = 'in_progress' AND environment = %s AND platform = %s"
        " AND mode = ANY(%s) AND deployment_id <> %s ORDER BY started_at"
    ).format(_table(schema, "deployment_log"))
    conn = connect(dsn)
    try:
        ensure_tables(conn, schema)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(query, (environment, platform, list(modes), exclude))
            rows = cur.fetchall()
            return [_crashed(row) for row in rows if not is_alive(cur, row[0])]
    except psycopg2.Error as exc:
        raise LedgerError(f"recovery: looking for crashed runs failed: {redact(str(exc)).strip()}") from None
    finally:
        conn.close()


def _crashed(row: tuple[Any, ...]) -> CrashedRun:
    return CrashedRun(
        deployment_id=row[0],
        mode=row[1],
        new_version=row[2],
        previous_version=row[3],
        current_step=row[4],
        validation_run_id=row[5],
        strategy=row[6],
        artifact_digests=row[7] or {},
    )


def end_sessions(dsn: Secret, deployment_id: str) -> int:
    """End the database sessions a dead run left working (a statement the server is still running
    for it, e.g. a CREATE INDEX CONCURRENTLY, holding the migration lock); wait until they are gone.
    Returns how many there were."""
    name = f"deploy-orchestrator {deployment_id}"[:63]
    conn = connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            row = cur.fetchone()
            ended = int(row[0]) if row else 0
            deadline = time.monotonic() + _SESSION_GONE_SECONDS
            while ended and time.monotonic() < deadline:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,))
                left = cur.fetchone()
                if not left or not left[0]:
                    break
                time.sleep(0.05)
            return ended
    except psycopg2.Error as exc:
        raise LedgerError(f"recovery: ending the sessions of {deployment_id} failed: {redact(str(exc))}") from None
    finally:
        conn.close()


def note(
    dsn: Secret | None,
    deployment_id: str,
    *,
    schema: str,
    digests: Mapping[str, Any] | None = None,
    release: str | None = None,
    previous: str | None = None,
) -> None:
    """Checkpoint what a recoverer of this run would need. Never raises (a lost checkpoint makes
    recovery more careful, not wrong: without digests it leaves migrations for a person)."""
    if dsn is None:
        return
    query = sql.SQL(
        "UPDATE {} SET artifact_digests = artifact_digests || %s::jsonb,"
        " new_version = COALESCE(%s, new_version), previous_version = COALESCE(%s, previous_version),"
        " updated_at = now()"
        " WHERE deployment_id = %s AND status = 'in_progress'"
    ).format(_table(schema, "deployment_log"))
    try:
        _run(
            dsn,
            schema,
            "checkpoint",
            query,
            (json.dumps(dict(digests or {}), default=str), release, previous, deployment_id),
        )
    except LedgerError:
        return


def require(dsn: Secret, deployment_id: str, *, schema: str, facts: Mapping[str, Any]) -> None:
    """Checkpoint `facts` a side effect must not go ahead without (which app a delete is about to
    remove). Raises LedgerError, also when the run has no `in_progress` row to take them."""
    query = sql.SQL(
        "UPDATE {} SET artifact_digests = artifact_digests || %s::jsonb, updated_at = now()"
        " WHERE deployment_id = %s AND status = 'in_progress' RETURNING 1"
    ).format(_table(schema, "deployment_log"))
    if not _run(dsn, schema, "checkpoint", query, (json.dumps(dict(facts), default=str), deployment_id)):
        raise LedgerError(f"recovery: run {deployment_id} has no in-progress ledger row to take its checkpoint")


def has_pair(dsn: Secret, deployment_id: str, *, schema: str) -> bool:
    """Did the run itself already queue a preference pair (it died while recording)?"""
    query = sql.SQL("SELECT 1 FROM {} WHERE deployment_id = %s LIMIT 1").format(_table(schema, "hardening_outbox"))
    return bool(_run(dsn, schema, "reading the outbox", query, (deployment_id,)))


def settle(dsn: Secret, run: CrashedRun, *, schema: str, recovery: Mapping[str, Any], error: str) -> None:
    """Mark the row `crashed` with what recovery did. Raises LedgerError."""
    query = sql.SQL(
        "UPDATE {} SET status = 'crashed', failed_step = COALESCE(current_step, 'unknown'), current_step = 'done',"
        " error = %s, exit_code = 1, finished_at = now(), updated_at = now(), recovery = %s::jsonb,"
        " rolled_back = %s WHERE deployment_id = %s AND status = 'in_progress'"
    ).format(_table(schema, "deployment_log"))
    moved = bool(recovery.get("moved_traffic"))
    _run(
        dsn,
        schema,
        "settling the crashed row",
        query,
        (error, json.dumps(dict(recovery), default=str), moved, run.deployment_id),
    )
