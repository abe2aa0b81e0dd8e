"""The migrations connection: open it without leaking the DSN, and refuse transaction poolers.

A pooler in transaction mode (PgBouncer `pool_mode = transaction`, Supabase/Supavisor on port
6543) hands each transaction to whichever server backend is free. Session advisory locks and
`SET` then stick to a backend the runner no longer owns: two deploys could migrate at once and
nothing would say so. The tell is the backend pid: within one client session it changes between
transactions, or a second client session is handed the first one's backend.
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from orchestrator.errors import MigrationError
from orchestrator.redaction import Secret, redact

__all__ = ["check_session_pooling", "connect", "describe_dsn", "server_version"]

_PID_SAMPLES = 3
_APPLICATION_NAME_MAX = 63  # PostgreSQL truncates at NAMEDATALEN - 1


def describe_dsn(dsn: Secret) -> str:
    """Where the DSN points, for messages: `postgresql://user@host:port/db`, never the password."""
    try:
        params = psycopg2.extensions.parse_dsn(dsn.reveal())
    except psycopg2.ProgrammingError:
        return "the configured database (DSN unparsable)"
    user = params.get("user", "")
    host = params.get("host", "localhost")
    port = params.get("port", "5432")
    database = params.get("dbname", user)
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{database}"


def connect(dsn: Secret, *, application_name: str, connect_timeout_seconds: float = 10.0) -> Any:
    """An autocommit psycopg2 connection named `application_name`. Raises MigrationError (DSN masked)."""
    try:
        conn = psycopg2.connect(
            dsn.reveal(),
            application_name=application_name[:_APPLICATION_NAME_MAX],
            connect_timeout=max(1, round(connect_timeout_seconds)),
        )
    except psycopg2.Error as exc:
        # libpq does not print passwords, but a DSN echoed back in an error must not leak either.
        reason = redact(str(exc).strip()).replace(dsn.reveal(), "***")
        raise MigrationError(
            f"cannot connect to the migrations database {describe_dsn(dsn)}: {reason}. "
            "Check the DSN in credentials.db_connection_env_var and that the server accepts connections."
        ) from None
    conn.autocommit = True
    # The session holds the migration lock from the first migration until the run is verified (or
    # undone), idle in between: a server that ends idle sessions would drop the lock under a live
    # run, and the undo with it. PostgreSQL before 14 has no such timeout (UndefinedObject).
    with conn.cursor() as cur, contextlib.suppress(psycopg2.errors.UndefinedObject):
        cur.execute("SET idle_session_timeout = 0")
    return conn


def server_version(conn: Any) -> str:
    """`"15.4"` from libpq's integer (150004), the form squawk's `--pg-version` takes."""
    number = int(conn.server_version)
    return f"{number // 10000}.{number % 10000}"


def check_session_pooling(conn: Any, dsn: Secret, *, application_name: str) -> None:
    """Raise MigrationError if `conn` goes through a pooler that does not keep one backend per session."""
    with conn.cursor() as cur:
        pids = [_backend_pid(cur) for _ in range(_PID_SAMPLES)]
        if len(set(pids)) > 1:
            raise MigrationError(_pooler_message(dsn, f"the backend pid changed between transactions: {pids}"))
        # A lone client may keep getting the same backend from a transaction pooler, so ask a second
        # client: holding a transaction open, it must not be given our backend, nor push us off it.
        probe = connect(dsn, application_name=application_name + " (pooler probe)")
        try:
            with probe.cursor() as probe_cur:
                probe_cur.execute("BEGIN")
                other = _backend_pid(probe_cur)
                if other == pids[0]:
                    raise MigrationError(
                        _pooler_message(dsn, f"a second session was handed this session's backend (pid {other})")
                    )
                again = _backend_pid(cur)
                if again != pids[0]:
                    raise MigrationError(
                        _pooler_message(dsn, f"the backend pid changed between transactions: {pids[0]} -> {again}")
                    )
                probe_cur.execute("ROLLBACK")
        finally:
            probe.close()


def _backend_pid(cur: Any) -> int:
    cur.execute("SELECT pg_backend_pid()")
    row = cur.fetchone()
    return int(row[0])


def _pooler_message(dsn: Secret, evidence: str) -> str:
    where = describe_dsn(dsn)
    supabase = (
        " On Supabase, port 6543 is the transaction pooler: use the session pooler on port 5432 or the direct "
        "connection (db.<project>.supabase.co:5432)."
        if ":6543/" in where
        else ""
    )
    return (
        f"{where} goes through a connection pooler in transaction mode ({evidence}). Migrations need one "
        "server session for the whole run (a session advisory lock, SET lock_timeout, no-transaction "
        "scripts), which such a pooler silently breaks. Point credentials.db_connection_env_var at a direct "
        "connection or a session-mode pooler (port 5432) for migrations." + supabase
    )
