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
from orchestrator.errors import LockError, MigrationError
from orchestrator.migrations.connection import check_session_pooling
from orchestrator.redaction import Secret, mask_url, redact

__all__ = ["hold_deploy_lock"]

log = logging.getLogger(__name__)


@contextmanager
def hold_deploy_lock(dsn: Secret, target: str, *, wait_seconds: float, deployment_id: str) -> Iterator[None]:
    """Hold the lock for `target` for the duration of the block. Raises LockError naming the holder
    after `wait_seconds`, or when the database cannot be reached (fail closed: nothing touched)."""
    where = mask_url(dsn.reveal())
    try:
        conn = psycopg2.connect(
            dsn.reveal(),
            application_name=f"deploy-orchestrator {deployment_id}",
            connect_timeout=10,
            # A build can take many minutes with this session idle: keepalives stop a NAT or load
            # balancer from dropping it (and with it the lock) unnoticed.
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
    except psycopg2.Error as exc:
        raise LockError(
            f"cannot take the deploy lock: the ledger database at {where} is unreachable "
            f"({redact(str(exc)).strip()}); nothing was touched"
        ) from None
    conn.autocommit = True
    lock = AdvisoryLock(DEPLOYS, target, purpose="deploy lock", wait_setting="deploy_lock.wait_seconds")
    try:
        try:
            check_session_pooling(conn, dsn, application_name=f"deploy-orchestrator {deployment_id}")
        except MigrationError as exc:
            raise LockError(f"cannot take the deploy lock: {exc}") from None
        with conn.cursor() as cur:
            lock.acquire(cur, wait_seconds=wait_seconds, where=where)
        try:
            yield
        finally:
            try:
                with conn.cursor() as cur:
                    lock.release(cur)
            except psycopg2.Error as exc:
                # The session is gone, and PostgreSQL released the lock with it; the run's outcome stands.
                log.warning("releasing the deploy lock failed (%s); the server dropped it with the session", exc)
    finally:
        conn.close()
