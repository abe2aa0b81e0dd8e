"""One deploy at a time per target: a session advisory lock in the ledger database.

A workflow `concurrency` group serialises runs of one workflow; this lock also covers a second
workflow, a laptop and a manual rollback aimed at the same target. It is taken once the gates
have passed (a refused run never waits) and held until the run is recorded. PostgreSQL drops it
with the session, so a crashed run never leaves it behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2

from orchestrator.advisory_lock import DEPLOYS, AdvisoryLock
from orchestrator.lock_session import lock_session
from orchestrator.redaction import Secret, mask_url

__all__ = ["hold_deploy_lock"]

log = logging.getLogger(__name__)


@contextmanager
def hold_deploy_lock(dsn: Secret, target: str, *, wait_seconds: float, deployment_id: str) -> Iterator[None]:
    """Hold the lock for `target` for the duration of the block. Raises LockError naming the holder
    after `wait_seconds`, or when the database cannot be reached (fail closed: nothing touched)."""
    lock = AdvisoryLock(DEPLOYS, target, purpose="deploy lock", wait_setting="deploy_lock.wait_seconds")
    application_name = f"deploy-orchestrator {deployment_id}"
    with lock_session(dsn, application_name=application_name, purpose=lock.purpose) as conn:
        with conn.cursor() as cur:
            lock.acquire(cur, wait_seconds=wait_seconds, where=mask_url(dsn.reveal()))
        try:
            yield
        finally:
            try:
                with conn.cursor() as cur:
                    lock.release(cur)
            except psycopg2.Error as exc:
                # The session is gone, and PostgreSQL released the lock with it; the run's outcome stands.
                log.warning("releasing the deploy lock failed (%s); the server dropped it with the session", exc)
