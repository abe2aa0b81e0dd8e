"""The ledger database: connecting to it and creating its tables.

The ledger, the hardening outbox, recovery and the good-release judgement all keep their tables in
one database, created from `schema/ledger.sql` (idempotent DDL) in the `public` schema or a
configured one. The DSN is a `Secret`; connection errors are reported with the password masked.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from orchestrator.errors import OrchestratorError
from orchestrator.redaction import Secret, mask_url, redact

__all__ = ["LedgerError", "check_schema_name", "connect", "ensure_tables"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Serialises the DDL of concurrent first runs; an arbitrary constant unique to this project.
_DDL_LOCK_KEY = 0x6C6564676572
_TABLES = ("deployment_log", "pipeline_lineage", "hardening_outbox")
# Columns added after a table first shipped: a ledger missing one gets the (idempotent) DDL again.
_ADDED_COLUMNS = (("pipeline_lineage", "sqlagent_run_ids"), ("pipeline_lineage", "migration_provenance"))


class LedgerError(OrchestratorError):
    """The ledger database could not be reached or written. Carries the masked DSN."""

    step = "record"


def check_schema_name(schema: str) -> str:
    if not _IDENTIFIER.match(schema):
        raise LedgerError(
            f"ledger schema name {schema!r} is not a plain SQL identifier: use letters, digits and underscores"
        )
    return schema


def connect(dsn: Secret, *, connect_timeout: float = 5.0) -> psycopg2.extensions.connection:
    """Open a connection; raises LedgerError naming the masked DSN and what to check."""
    try:
        return psycopg2.connect(dsn.reveal(), connect_timeout=max(1, int(connect_timeout)))
    except psycopg2.Error as exc:
        raise LedgerError(
            f"cannot connect to the ledger database {mask_url(dsn.reveal())}: {redact(str(exc)).strip()} "
            "(check the DSN in the environment variable named by ledger.dsn_env_var and that the server is up)"
        ) from None


def ensure_tables(conn: psycopg2.extensions.connection, schema: str) -> None:
    """Create the schema and the ledger/outbox tables if missing. Idempotent; commits."""
    ddl = _ddl_path().read_text()
    with conn, conn.cursor() as cur:
        # A provisioned ledger may grant only SELECT/INSERT/UPDATE; CREATE ... IF NOT EXISTS still
        # needs CREATE rights, so look before creating.
        # One look at the catalogs (information_schema's views took longer than the rest of the call).
        columns = (("deployment_log", "recovery"), *_ADDED_COLUMNS)
        cur.execute(
            "SELECT (SELECT bool_and(to_regclass(format('%%I.%%I', %s::text, t)) IS NOT NULL)"
            " FROM unnest(%s::text[]) AS t) AND (SELECT count(*) = %s FROM pg_catalog.pg_attribute a"
            " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND a.attnum > 0 AND NOT a.attisdropped"
            " AND (c.relname::text, a.attname::text) IN (SELECT * FROM unnest(%s::text[], %s::text[])))",
            (schema, list(_TABLES), len(columns), schema, [t for t, _ in columns], [c for _, c in columns]),
        )
        row = cur.fetchone()
        if row and row[0]:
            return
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK_KEY,))
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cur.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        cur.execute(ddl)


def _ddl_path() -> Path:
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "schema" / "ledger.sql", package / "schema" / "ledger.sql"):
        if candidate.exists():
            return candidate
    raise LedgerError("schema/ledger.sql not found next to the orchestrator package; reinstall deploy-orchestrator")
