"""Database attempts: connectivity (`SELECT 1` plus the configured query) and the one-value SQL the job checks use.

Every statement runs in a READ ONLY transaction with a transaction-local statement timeout:
verification must never modify production data (the seed's hard boundary), and `SET LOCAL`
works behind transaction-mode poolers (PgBouncer, Supavisor :6543) where a session `SET` does not.
Non-HTTP checks report `status_code` 0; what happened is in the detail.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions

from orchestrator.contract import DatabaseCheck
from orchestrator.health.checks.base import Attempt, Check, describe_error
from orchestrator.redaction import Secret, redact

__all__ = ["MISSING_DSN", "DatabaseUnavailableError", "Row", "database_check", "query_one"]

MISSING_DSN = (
    "no database connection: the environment variable named by credentials.db_connection_env_var is unset or empty; "
    "set it to the production DSN (or remove the database and SQL job checks from verification)"
)

# libpq ignores connect_timeout below 2 s, so asking for less would silently wait longer.
_MIN_CONNECT_TIMEOUT = 2


@dataclass(frozen=True, slots=True)
class Row:
    """The first column of the first row of each statement run, and how long the whole attempt took."""

    values: tuple[Any, ...]
    has_rows: tuple[bool, ...]
    elapsed_ms: float


class DatabaseUnavailableError(Exception):
    """Connecting or querying failed; the message is already scrubbed of the DSN's password."""

    def __init__(self, message: str, *, conclusive: bool = False) -> None:
        super().__init__(message)
        self.conclusive = conclusive


def query_one(dsn: Secret, statements: tuple[str, ...], timeout_seconds: float) -> Row:
    """Connect, run each statement read-only, keep each one's first value. Raises DatabaseUnavailableError."""
    started = time.monotonic()
    timeout_ms = max(int(timeout_seconds * 1000), 1)
    try:
        conn = psycopg2.connect(
            dsn.reveal(),
            connect_timeout=max(_MIN_CONNECT_TIMEOUT, math.ceil(timeout_seconds)),
            application_name="deploy-orchestrator-verify",
        )
    except psycopg2.ProgrammingError:
        # libpq's "invalid dsn" message quotes the string it could not parse, password included.
        raise DatabaseUnavailableError(
            "the value of credentials.db_connection_env_var is not a valid PostgreSQL connection string "
            "(libpq could not parse it); fix the secret's value",
            conclusive=True,
        ) from None
    except psycopg2.Error as exc:
        raise DatabaseUnavailableError(_scrub(f"cannot connect: {describe_error(exc)}", dsn)) from None
    values: list[Any] = []
    has_rows: list[bool] = []
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cur:
            cur.execute(f"SET LOCAL statement_timeout = {timeout_ms}")
            for sql in statements:
                cur.execute(_single_select(sql))
                row = cur.fetchone() if cur.description is not None else None
                has_rows.append(row is not None)
                values.append(row[0] if row else None)
        conn.rollback()
    except psycopg2.Error as exc:
        raise DatabaseUnavailableError(_scrub(f"query failed: {describe_error(exc)}", dsn)) from None
    finally:
        conn.close()
    return Row(tuple(values), tuple(has_rows), (time.monotonic() - started) * 1000.0)


def database_check(dsn: Secret | None, check: DatabaseCheck) -> Check:
    """Connect, `SELECT 1`, then the optional query (a row whose first column is non-null and not false)."""
    statements = ("SELECT 1",) + ((check.query,) if check.query else ())

    def attempt(timeout_seconds: float) -> Attempt:
        if not dsn:
            return Attempt(False, 0, MISSING_DSN, conclusive=True)
        try:
            row = query_one(dsn, statements, timeout_seconds)
        except DatabaseUnavailableError as exc:
            return Attempt(False, 0, str(exc), conclusive=exc.conclusive)
        if check.query:
            if not row.has_rows[-1]:
                return Attempt(False, 0, f"query returned no rows: {check.query}")
            if row.values[-1] is None or row.values[-1] is False:
                return Attempt(
                    False, 0, f"query returned {row.values[-1]!r} (expected true or non-null): {check.query}"
                )
        if row.elapsed_ms > check.max_latency_ms:
            return Attempt(
                False, 0, f"answered in {row.elapsed_ms:.0f} ms, over max_latency_ms {check.max_latency_ms:g}"
            )
        return Attempt(True, 0, f"connected and queried in {row.elapsed_ms:.0f} ms")

    return Check(name="database", endpoint="database", timeout_seconds=check.timeout_seconds, attempt=attempt)


def _scrub(text: str, dsn: Secret) -> str:
    """`redact()` knows the whole DSN and a URL's password; a key=value DSN's password needs parsing."""
    try:
        password = psycopg2.extensions.parse_dsn(dsn.reveal()).get("password")
    except psycopg2.Error:
        password = None
    if password:
        text = text.replace(password, "***")
    return redact(text)


def _single_select(sql: str) -> str:
    """Run the configured SQL as one subquery: PostgreSQL then refuses a second statement (a
    `COMMIT; DELETE ...` would otherwise escape the read-only transaction) and data-changing WITH."""
    return f"SELECT * FROM ({sql.strip().rstrip(';')}) AS verify_query LIMIT 1"
