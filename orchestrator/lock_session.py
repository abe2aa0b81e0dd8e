"""The session a run-long advisory lock lives on: the deploy lock and the run liveness lock.

Such a lock is only as good as its session. PostgreSQL drops the lock when the session ends, and
every other run reads that as "its holder is gone". So the session is opened to last the run:
TCP keepalives (a build can leave it idle for many minutes, and a NAT or load balancer must not
drop it unnoticed), the server's `idle_session_timeout` off for it (a managed database may end
idle sessions after a few minutes), and no transaction pooler in between (it hands the lock's
backend to other clients). Whatever stands in the way is a LockError, raised before anything is
touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.errors

from orchestrator.errors import LockError, MigrationError
from orchestrator.migrations.connection import check_session_pooling
from orchestrator.redaction import Secret, mask_url, redact

__all__ = ["lock_session"]

_APPLICATION_NAME_MAX = 63  # PostgreSQL truncates at NAMEDATALEN - 1


@contextmanager
def lock_session(dsn: Secret, *, application_name: str, purpose: str) -> Iterator[Any]:
    """An autocommit connection fit to hold `purpose` for a whole run; closed after the block.

    Raises LockError when the database is unreachable or reached through a transaction pooler."""
    name = application_name[:_APPLICATION_NAME_MAX]
    try:
        conn = psycopg2.connect(
            dsn.reveal(),
            application_name=name,
            connect_timeout=10,
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
    except psycopg2.Error as exc:
        raise LockError(
            f"cannot take the {purpose}: the ledger database at {mask_url(dsn.reveal())} is unreachable "
            f"({redact(str(exc)).strip()}); nothing was touched"
        ) from None
    try:
        conn.autocommit = True
        # PostgreSQL before 14 has no such timeout (UndefinedObject): nothing ends an idle session there.
        with conn.cursor() as cur, contextlib.suppress(psycopg2.errors.UndefinedObject):
            cur.execute("SET idle_session_timeout = 0")
        try:
            check_session_pooling(conn, dsn, application_name=name)
        except MigrationError as exc:
            raise LockError(f"cannot take the {purpose}: {exc}") from None
        yield conn
    finally:
        conn.close()
