"""Is the run that wrote an `in_progress` row still alive? It holds a lock that says so.

Every run takes a session advisory lock named by its deployment id before it writes its ledger row
and holds it until the process ends. PostgreSQL drops the lock with the session, so a run that was
killed (SIGKILL, OOM, a cancelled job, a lost runner) leaves its row `in_progress` and its lock free:
that, and only that, is a crashed run. A run that is merely slow (waiting for the deploy lock,
building) still holds it and is left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from orchestrator.advisory_lock import AdvisoryLock
from orchestrator.lock_session import lock_session
from orchestrator.redaction import Secret, mask_url

__all__ = ["hold_run_lock", "is_alive", "run_lock"]

RUNS = 0x444F_5255  # "DORU": a third namespace beside migrations and deploys (advisory_lock.py)


def run_lock(deployment_id: str) -> AdvisoryLock:
    return AdvisoryLock(
        RUNS, deployment_id, purpose="run liveness lock", wait_setting="a run's own lock is never waited for"
    )


@contextmanager
def hold_run_lock(dsn: Secret, deployment_id: str) -> Iterator[None]:
    """Hold this run's liveness lock for the block (the run's lifetime).

    Raises LockError, before the run writes its row, when the lock cannot be held for the whole
    run: the database is unreachable or behind a transaction pooler (lock_session.py), or another
    session holds it. A run whose `in_progress` row had no lock behind it would look crashed to
    any recovery meanwhile: it would settle the live run's row and put traffic back under it.
    """
    lock = run_lock(deployment_id)
    application_name = f"deploy-orchestrator {deployment_id}"
    with lock_session(dsn, application_name=application_name, purpose=lock.purpose) as conn:
        with conn.cursor() as cur:
            lock.acquire(cur, wait_seconds=0, where=mask_url(dsn.reveal()))
        yield


def is_alive(cur: Any, deployment_id: str) -> bool:
    """True while the run holds its lock. Takes and drops the lock at once when it is free."""
    key = run_lock(deployment_id).key
    cur.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
    row = cur.fetchone()
    if row and row[0]:
        cur.execute("SELECT pg_advisory_unlock(%s, %s)", key)
        return False
    return True
