"""One deploy at a time per target: a session advisory lock in the ledger database.

A workflow `concurrency` group serialises runs of one workflow; this lock also covers a second
workflow, a laptop and a manual rollback aimed at the same target. It is taken once the gates
have passed (a refused run never waits) and held until the run is recorded. PostgreSQL drops it
with the session, so a crashed run never leaves it behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2

from orchestrator.advisory_lock import DEPLOYS, AdvisoryLock
from orchestrator.errors import LockError
from orchestrator.redaction import Secret, mask_url, redact

__all__ = ["hold_deploy_lock"]


@contextmanager
def hold_deploy_lock(dsn: Secret, target: str, *, wait_seconds: float, deployment_id: str) -> Iterator[None]:
    """Hold the lock for `target` for the duration of the block. Raises LockError naming the holder
    after `wait_seconds`, or when the database cannot be reached (fail closed: nothing touched)."""
    where = mask_url(dsn.reveal())
    try:
        conn = psycopg2.connect(
            dsn.reveal(), application_name=f"deploy-orchestrator {deployment_id}", connect_timeout=10
        )
    except psycopg2.Error as exc:
        raise LockError(
            f"cannot take the deploy lock: the ledger database at {where} is unreachable "
            f"({redact(str(exc)).strip()}); nothing was touched"
        ) from None
    conn.autocommit = True
    lock = AdvisoryLock(DEPLOYS, target, purpose="deploy lock", wait_setting="deploy_lock.wait_seconds")
    try:
        with conn.cursor() as cur:
            lock.acquire(cur, wait_seconds=wait_seconds, where=where)
        try:
            yield
        finally:
            with conn.cursor() as cur:
                lock.release(cur)
    finally:
        conn.close()
