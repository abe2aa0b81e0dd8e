"""Is the run that wrote an `in_progress` row still alive? It holds a lock that says so.

Every run takes a session advisory lock named by its deployment id before it writes its ledger row
and holds it until the process ends. PostgreSQL drops the lock with the session, so a run that was
killed (SIGKILL, OOM, a cancelled job, a lost runner) leaves its row `in_progress` and its lock free:
that, and only that, is a crashed run. A run that is merely slow (waiting for the deploy lock,
building) still holds it and is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2

from orchestrator.advisory_lock import AdvisoryLock
from orchestrator.redaction import Secret, redact

__all__ = ["hold_run_lock", "is_alive", "run_lock"]

log = logging.getLogger(__name__)

RUNS = 0x444F_5255  # "DORU": a third namespace beside migrations and deploys (advisory_lock.py)


def run_lock(deployment_id: str) -> AdvisoryLock:
    return AdvisoryLock(RUNS, deployment_id, purpose="run liveness lock", wait_setting="(never waited for)")


@contextmanager
def hold_run_lock(dsn: Secret | None, deployment_id: str) -> Iterator[bool]:
    """Hold this run's liveness lock for the block; yields whether it is held. Never raises: without
    the ledger database there is no row to protect either."""
    if dsn is None:
        yield False
        return
    try:
        conn = psycopg2.connect(
            dsn.reveal(),
            application_name=f"deploy-orchestrator {deployment_id}"[:63],
            connect_timeout=10,
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
    except psycopg2.Error as exc:
        log.warning("run liveness lock not taken (%s); a recovery could not tell this run is alive", redact(str(exc)))
        yield False
        return
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s, %s)", run_lock(deployment_id).key)
            row = cur.fetchone()
        yield bool(row and row[0])
    finally:
        conn.close()


def is_alive(cur: Any, deployment_id: str) -> bool:
    """True while the run holds its lock. Takes and drops the lock at once when it is free."""
    key = run_lock(deployment_id).key
    cur.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
    row = cur.fetchone()
    if row and row[0]:
        cur.execute("SELECT pg_advisory_unlock(%s, %s)", key)
        return False
    return True
