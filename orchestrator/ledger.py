"""The ledger: one `deployment_log` row per run and one `pipeline_lineage` row per deploy.

A run writes its row at the start (`status = 'in_progress'`) and completes it at the end, so a
run that crashed in between stays visible. A deploy refused by a gate is recorded too
(`status = 'failed'` with `refused_reason`). Tables are created on first use from
`schema/ledger.sql` (idempotent DDL) in the `public` schema or a configured one (Supabase keeps
application tables in `public`; a dedicated schema keeps the orchestrator's apart).

The DSN is a `Secret`; connection errors are reported with the password masked.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from orchestrator.contract import LedgerConfig, Request, Result
from orchestrator.errors import OrchestratorError
from orchestrator.redaction import Secret, mask_url, redact
from orchestrator.runlog import RunLog

__all__ = ["Ledger", "LedgerError", "LineageLink", "check_schema_name", "connect", "ensure_tables", "open_ledger"]

_logger = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Serialises the DDL of concurrent first runs; an arbitrary constant unique to this project.
_DDL_LOCK_KEY = 0x6C6564676572


class LedgerError(OrchestratorError):
    """The ledger database could not be reached or written. Carries the masked DSN."""

    step = "record"


@dataclass(frozen=True, slots=True)
class LineageLink:
    """SQLAgent run(s) + validation run -> compliance verdict -> artifacts (digests) -> deployment -> outcome."""

    deployment_id: str
    validation_run_id: str
    outcome: str
    compliance_verdict_id: str | None = None
    migration_digests: Mapping[str, str] = field(default_factory=dict)
    """Migration filename -> sha256."""
    module_digests: Mapping[str, str] = field(default_factory=dict)
    """Odoo module path -> tree digest."""
    image_digest: str | None = None
    sqlagent_run_ids: tuple[str, ...] = ()
    """The SQLAgent runs that produced the migrations."""
    migration_provenance: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Migration filename -> its SQLAgent record (sha256, sqlagent_run_id, agent_id, recorded_at, record_id)."""

    @classmethod
    def from_result(cls, result: Result) -> LineageLink:
        """The link as far as the result knows it: digests and verdict from its `artifacts`/`gates` extras.

        Missing pieces stay empty (a refused deploy has no verdict id, a run without gates no digests).
        """
        extras = dict(result.extras)
        gate = _mapping(extras.get("gates"))
        digests = _mapping(extras.get("artifacts")) or _mapping(gate.get("digests"))
        outcome = "refused" if _mapping(extras.get("refused")) else result.status
        sqlagent = _mapping(gate.get("sqlagent"))
        runs = sqlagent.get("sqlagent_run_ids")
        return cls(
            deployment_id=result.deployment_id,
            validation_run_id=result.validation_run_id,
            outcome=outcome,
            compliance_verdict_id=_str_or_none(gate.get("verdict_id")),
            migration_digests=_str_map(digests.get("migrations")),
            module_digests=_str_map(digests.get("modules")),
            image_digest=_str_or_none(digests.get("image")),
            sqlagent_run_ids=tuple(str(r) for r in runs) if isinstance(runs, list) else (),
            migration_provenance={
                str(name): _str_map(record) for name, record in _mapping(sqlagent.get("files")).items()
            },
        )


def _redact_all(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _redact_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_all(v) for v in value]
    return value


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str_or_none(value: Any) -> str | None:
    return str(value) if value is not None else None


def _str_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _ddl_path() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "schema" / "ledger.sql", here / "schema" / "ledger.sql"):
        if candidate.exists():
            return candidate
    raise LedgerError("schema/ledger.sql not found next to the orchestrator package; reinstall deploy-orchestrator")


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


_TABLES = ("deployment_log", "pipeline_lineage", "hardening_outbox")
# Columns added after a table first shipped: a ledger missing one gets the (idempotent) DDL again.
_ADDED_COLUMNS = (("pipeline_lineage", "sqlagent_run_ids"), ("pipeline_lineage", "migration_provenance"))


def ensure_tables(conn: psycopg2.extensions.connection, schema: str) -> None:
    """Create the schema and the ledger/outbox tables if missing. Idempotent; commits."""
    ddl = _ddl_path().read_text()
    with conn, conn.cursor() as cur:
        # A provisioned ledger may grant only SELECT/INSERT/UPDATE; CREATE ... IF NOT EXISTS still
        # needs CREATE rights, so look before creating.
        cur.execute(
            "SELECT bool_and(to_regclass(format('%%I.%%I', %s::text, t)) IS NOT NULL) AND EXISTS (SELECT 1 FROM"
            " information_schema.columns WHERE table_schema = %s AND table_name = 'deployment_log'"
            " AND column_name = 'recovery') FROM unnest(%s::text[]) AS t",
            (schema, schema, list(_TABLES)),
        )
        row = cur.fetchone()
        cur.execute(
            "SELECT count(*) = %s FROM information_schema.columns WHERE table_schema = %s"
            " AND (table_name, column_name) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
            (len(_ADDED_COLUMNS), schema, [t for t, _ in _ADDED_COLUMNS], [c for _, c in _ADDED_COLUMNS]),
        )
        columns = cur.fetchone()
        if row and row[0] and columns and columns[0]:
            return
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK_KEY,))
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cur.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        cur.execute(ddl)


def _now() -> datetime:
    return datetime.now(UTC)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class Ledger:
    """`deployment_log` and `pipeline_lineage` over one DSN.

    No method raises: the record must not change a deploy's outcome. A failed write is logged
    (DSN masked) and the method returns False. Each call opens, uses and closes its own
    connection: a run makes a handful of calls, and a connection held across a long deploy would
    be one more thing to break (or hold a pooler slot).
    """

    def __init__(
        self,
        dsn: Secret,
        *,
        schema: str = "public",
        connect_timeout: float = 5.0,
        log: RunLog | None = None,
    ) -> None:
        self._dsn = dsn
        self._schema = check_schema_name(schema)
        self._connect_timeout = connect_timeout
        self._runlog = log
        self._ready = False

    def _table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self._schema), sql.Identifier(name))

    def _warn(self, message: str) -> None:
        if self._runlog is not None:
            self._runlog.warn(message)
        else:
            _logger.warning("%s", message)

    def _write(self, what: str, query: sql.Composable, params: Sequence[Any]) -> bool:
        try:
            conn = connect(self._dsn, connect_timeout=self._connect_timeout)
        except LedgerError as exc:
            self._warn(f"ledger {what} not recorded: {exc}")
            return False
        try:
            if not self._ready:
                ensure_tables(conn, self._schema)
                self._ready = True
            with conn, conn.cursor() as cur:
                cur.execute(query, params)
            return True
        except (psycopg2.Error, LedgerError) as exc:
            self._warn(f"ledger {what} not recorded in {mask_url(self._dsn.reveal())}: {redact(str(exc)).strip()}")
            return False
        finally:
            conn.close()

    def _read(self, query: sql.Composable, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        conn = connect(self._dsn, connect_timeout=self._connect_timeout)
        try:
            if not self._ready:
                ensure_tables(conn, self._schema)
                self._ready = True
            with conn, conn.cursor() as cur:
                cur.execute(query, params)
                return list(cur.fetchall())
        finally:
            conn.close()

    def start(
        self,
        deployment_id: str,
        request: Request,
        *,
        previous_version: str | None = None,
        artifact_digests: Mapping[str, Any] | None = None,
        run_url: str | None = None,
    ) -> bool:
        """Insert the run's row as `in_progress`. Idempotent per deployment_id (a repeat changes nothing)."""
        config = request.config
        query = sql.SQL(
            "INSERT INTO {} (deployment_id, validation_run_id, mode, status, environment, strategy, platform,"
            " previous_version, new_version, current_step, run_url, artifact_digests, started_at)"
            " VALUES (%s, %s, %s, 'in_progress', %s, %s, %s, %s, %s, 'start', %s, %s::jsonb, %s)"
            " ON CONFLICT (deployment_id) DO NOTHING"
        ).format(self._table("deployment_log"))
        return self._write(
            "start",
            query,
            (
                deployment_id,
                request.validation_run_id,
                request.inputs.mode,
                config.environment,
                config.deployment.strategy,
                config.deployment.platform,
                previous_version,
                request.inputs.version,
                run_url,
                _json(dict(artifact_digests or {})),
                _now(),
            ),
        )

    def step(self, deployment_id: str, step: str) -> bool:
        """Record the pipeline position of a running deploy (what a crash would leave behind)."""
        query = sql.SQL(
            "UPDATE {} SET current_step = %s, updated_at = now() WHERE deployment_id = %s AND status = 'in_progress'"
        ).format(self._table("deployment_log"))
        return self._write("step", query, (step, deployment_id))

    def finish(self, result: Result, *, run_url: str | None = None, lineage: bool = True) -> bool:
        """Complete the run's row from the output contract (inserting it if `start` never landed).

        Every field of the result is kept: the seed's fields as columns/JSONB, the whole contract
        in `result`. A gate refusal (the result's `refused` extra) fills `refused_reason`; the
        artifact digests come from its `artifacts` extra. With `lineage`, a deploy (or a refused
        one) also gets its `pipeline_lineage` row from `LineageLink.from_result`.
        """
        # The result can quote secrets in error texts built by other steps; nothing unredacted is stored.
        data = _redact_all(result.to_dict())
        details = data.get("deployment_details", {})
        refused = data.get("refused")
        refused_reason = str(refused.get("reason")) if isinstance(refused, Mapping) else None
        digests = data.get("artifacts") if isinstance(data.get("artifacts"), Mapping) else {}
        values: dict[str, Any] = {
            "deployment_id": result.deployment_id,
            "validation_run_id": result.validation_run_id,
            "mode": result.mode,
            "status": result.status,
            "strategy": details.get("strategy"),
            "platform": details.get("platform"),
            "previous_version": details.get("previous_version"),
            "new_version": details.get("new_version"),
            "current_step": "done",
            "failed_step": result.failed_step,
            "refused_reason": redact(refused_reason) if refused_reason else None,
            "error": data.get("error"),
            "exit_code": result.exit_code,
            "url": result.url,
            "run_url": run_url,
            "deployed_at": result.deployed_at,
            "finished_at": _now(),
            "duration_seconds": details.get("duration_seconds"),
            "rolled_back": result.status == "rolled_back",
            "deployment_details": _json(details),
            "health_checks": _json(data.get("health_checks", [])),
            "migrations_applied": _json(data.get("migrations_applied", [])),
            "rollback": _json(data.get("rollback", {})),
            "hardening": _json(data.get("hardening", {})),
            "logs": _json(data.get("logs", [])),
            "artifact_digests": _json(digests),
            "result": _json(data),
        }
        columns = list(values)
        placeholders = [sql.SQL("%s::jsonb" if c in _JSONB else "%s") for c in columns]
        updates = [sql.SQL("updated_at = now()")]
        for column in columns[1:]:
            ident = sql.Identifier(column)
            if column == "run_url":
                # What the finishing call does not know keeps what `start` wrote.
                updates.append(sql.SQL("{0} = COALESCE(EXCLUDED.{0}, t.{0})").format(ident))
            elif column == "artifact_digests":
                updates.append(sql.SQL("{0} = t.{0} || EXCLUDED.{0}").format(ident))
            else:
                updates.append(sql.SQL("{0} = EXCLUDED.{0}").format(ident))
        query = sql.SQL("INSERT INTO {} AS t ({}) VALUES ({}) ON CONFLICT (deployment_id) DO UPDATE SET {}").format(
            self._table("deployment_log"),
            sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            sql.SQL(", ").join(placeholders),
            sql.SQL(", ").join(updates),
        )
        written = self._write("finish", query, [values[c] for c in columns])
        if lineage and result.mode == "deploy" and result.validation_run_id:
            written = self.record_lineage(LineageLink.from_result(result)) and written
        return written

    def record_lineage(self, link: LineageLink) -> bool:
        """Write (or update the outcome of) the deploy's lineage row. Idempotent per deployment_id."""
        query = sql.SQL(
            "INSERT INTO {} (deployment_id, validation_run_id, compliance_verdict_id, migration_digests,"
            " module_digests, image_digest, outcome, sqlagent_run_ids, migration_provenance)"
            " VALUES (%s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s::text[], %s::jsonb)"
            " ON CONFLICT (deployment_id) DO UPDATE SET validation_run_id = EXCLUDED.validation_run_id,"
            " compliance_verdict_id = EXCLUDED.compliance_verdict_id, migration_digests = EXCLUDED.migration_digests,"
            " module_digests = EXCLUDED.module_digests, image_digest = EXCLUDED.image_digest,"
            " outcome = EXCLUDED.outcome, sqlagent_run_ids = EXCLUDED.sqlagent_run_ids,"
            " migration_provenance = EXCLUDED.migration_provenance, recorded_at = now()"
        ).format(self._table("pipeline_lineage"))
        return self._write(
            "lineage",
            query,
            (
                link.deployment_id,
                link.validation_run_id,
                link.compliance_verdict_id,
                _json(dict(link.migration_digests)),
                _json(dict(link.module_digests)),
                link.image_digest,
                link.outcome,
                list(link.sqlagent_run_ids),
                _json({name: dict(record) for name, record in link.migration_provenance.items()}),
            ),
        )

    def last_module_digests(self, environment: str | None = None) -> dict[str, str]:
        """Odoo module digests of the newest successful deploy (in `environment` if given); {} if none.

        Lets the pipeline upgrade only the modules that changed. Read failures give {} (logged):
        the caller then upgrades every module, the safe side.
        """
        query = sql.SQL(
            "SELECT l.module_digests FROM {} l JOIN {} d USING (deployment_id)"
            " WHERE l.outcome = 'success' AND (%s::text IS NULL OR d.environment = %s)"
            " ORDER BY l.recorded_at DESC LIMIT 1"
        ).format(self._table("pipeline_lineage"), self._table("deployment_log"))
        try:
            rows = self._read(query, (environment, environment))
        except (psycopg2.Error, LedgerError) as exc:
            self._warn(f"ledger read of the last module digests failed: {redact(str(exc)).strip()}")
            return {}
        return _str_map(rows[0][0]) if rows else {}

    def deployments_after(self, version: str, environment: str | None = None) -> list[str] | None:
        """Deploys since `version` last went live, newest first, whatever their outcome (a failed or
        crashed run may have left migrations behind), for a manual rollback to it.

        None when the ledger never saw `version` go live (or cannot be read): the caller cannot
        tell which migrations came after it and must leave the schema alone.
        """
        query = sql.SQL(
            "WITH target AS (SELECT max(started_at) AS at FROM {log} WHERE new_version = %s AND status = 'success'"
            " AND mode = 'deploy' AND (%s::text IS NULL OR environment = %s))"
            " SELECT (SELECT at FROM target) IS NOT NULL, array_remove(array_agg(d.deployment_id"
            " ORDER BY d.started_at DESC), NULL) FROM {log} d, target"
            " WHERE d.started_at > target.at AND d.mode = 'deploy'"
            " AND (%s::text IS NULL OR d.environment = %s)"
        ).format(log=self._table("deployment_log"))
        try:
            rows = self._read(query, (version, environment, environment, environment, environment))
        except (psycopg2.Error, LedgerError) as exc:
            self._warn(f"ledger read of the deploys since {version} failed: {redact(str(exc)).strip()}")
            return None
        if not rows:
            return None
        found, ids = rows[0]
        if not found:
            return None
        return [str(i) for i in ids or []]

    def migration_digests(self, deployment_id: str) -> dict[str, str] | None:
        """The migration files (by file name) and sha256 digests that `deployment_id` was validated
        with, from its lineage; None when there is no lineage row (or it cannot be read)."""
        query = sql.SQL("SELECT migration_digests FROM {} WHERE deployment_id = %s").format(
            self._table("pipeline_lineage")
        )
        try:
            rows = self._read(query, (deployment_id,))
        except (psycopg2.Error, LedgerError) as exc:
            self._warn(f"ledger read of the lineage of {deployment_id} failed: {redact(str(exc)).strip()}")
            return None
        if not rows:
            return None
        return {path.rsplit("/", 1)[-1]: digest for path, digest in _str_map(rows[0][0]).items()}


_JSONB = frozenset(
    {
        "deployment_details",
        "health_checks",
        "migrations_applied",
        "rollback",
        "hardening",
        "logs",
        "artifact_digests",
        "result",
    }
)


def open_ledger(
    dsn: Secret | None, config: LedgerConfig, log: RunLog | None = None, *, schema: str = "public"
) -> Ledger | None:
    """The ledger for this run, or None (said in the log) when it is disabled or no DSN is set."""
    if not config.enabled:
        return None
    if dsn is None:
        message = "no ledger DSN set (ledger.dsn_env_var or credentials.db_connection_env_var): run not recorded"
        if log is not None:
            log.warn(message)
        else:
            _logger.warning("%s", message)
        return None
    return Ledger(dsn, schema=schema, log=log)
