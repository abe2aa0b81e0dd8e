"""`Ledger`: a run's handle on `deployment_log` and `pipeline_lineage`, and `open_ledger`, which picks it.

The row is written at the start of a run (`in_progress`), moved along as the pipeline goes
(`current_step`, what a crash leaves behind) and completed from the result at the end. The reads
are the few questions the pipeline asks of past runs: the module digests of the last good deploy,
the deploys since a release last went live, and the migrations a deploy was validated with.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from orchestrator.contract import LedgerConfig, MigrationProvenance, Request, Result
from orchestrator.ledger.database import LedgerError, check_schema_name, connect, ensure_tables
from orchestrator.ledger.finished_row import JSONB_COLUMNS, finished_row
from orchestrator.ledger.jsonb import dumps, string_map
from orchestrator.ledger.lineage import LineageLink
from orchestrator.redaction import Secret, mask_url, redact
from orchestrator.runlog import RunLog

__all__ = ["Ledger", "open_ledger"]

_logger = logging.getLogger(__name__)


class Ledger:
    """`deployment_log` and `pipeline_lineage` over one DSN.

    No method raises: the record must not change a deploy's outcome. A failed write is logged
    (DSN masked) and the method returns False. The calls of a run share one connection, opened on
    first use (a connection per call was most of a run's connections); one found broken is opened
    again once, so a server restart or an idle timeout during a long deploy costs a reconnect, not
    a record. `close` ends it (the pipeline does at the end of the run).
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
        self._conn: psycopg2.extensions.connection | None = None

    def _table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self._schema), sql.Identifier(name))

    def _warn(self, message: str) -> None:
        if self._runlog is not None:
            self._runlog.warn(message)
        else:
            _logger.warning("%s", message)

    def close(self) -> None:
        """End the shared connection (the next call opens another)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connection(self) -> psycopg2.extensions.connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._dsn, connect_timeout=self._connect_timeout)
        if not self._ready:
            ensure_tables(self._conn, self._schema)
            self._ready = True
        return self._conn

    def _execute(self, query: sql.Composable, params: Sequence[Any], *, fetch: bool) -> list[tuple[Any, ...]]:
        """One statement in its own transaction on the shared connection, which is opened again once
        when it turns out broken. Every statement here is an upsert or a read, so one that landed
        just before the connection was lost is safe to repeat."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                with conn, conn.cursor() as cur:
                    cur.execute(query, params)
                    return list(cur.fetchall()) if fetch else []
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                if not conn.closed and attempt == 1:
                    raise  # the server answered: a timeout or a refusal, not a lost connection
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _write(self, what: str, query: sql.Composable, params: Sequence[Any]) -> bool:
        try:
            self._execute(query, params, fetch=False)
            return True
        except LedgerError as exc:
            self._warn(f"ledger {what} not recorded: {exc}")
            return False
        except psycopg2.Error as exc:
            self._warn(f"ledger {what} not recorded in {mask_url(self._dsn.reveal())}: {redact(str(exc)).strip()}")
            return False

    def _read(self, query: sql.Composable, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._execute(query, params, fetch=True)

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
                dumps(dict(artifact_digests or {})),
                datetime.now(UTC),
            ),
        )

    def step(self, deployment_id: str, step: str) -> bool:
        """Record the pipeline position of a running deploy (what a crash would leave behind)."""
        query = sql.SQL(
            "UPDATE {} SET current_step = %s, updated_at = now() WHERE deployment_id = %s AND status = 'in_progress'"
        ).format(self._table("deployment_log"))
        return self._write("step", query, (step, deployment_id))

    def finish(
        self,
        result: Result,
        *,
        run_url: str | None = None,
        lineage: bool = True,
        provenance: Mapping[str, MigrationProvenance] | None = None,
    ) -> bool:
        """Complete the run's row from the output contract (inserting it if `start` never landed).

        The row is `finished_row(result)`, redacted. With `lineage`, a deploy (or a refused one)
        also gets its `pipeline_lineage` row from `LineageLink.from_result` (with `provenance`, the
        run's SQLAgent record of each migration file, which a result of many files only counts).
        """
        values = finished_row(result, run_url=run_url)
        columns = list(values)
        placeholders = [sql.SQL("%s::jsonb" if c in JSONB_COLUMNS else "%s") for c in columns]
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
            written = self.record_lineage(LineageLink.from_result(result, provenance)) and written
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
                dumps(dict(link.migration_digests)),
                dumps(dict(link.module_digests)),
                link.image_digest,
                link.outcome,
                list(link.sqlagent_run_ids),
                dumps({name: dict(record) for name, record in link.migration_provenance.items()}),
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
        return string_map(rows[0][0]) if rows else {}

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
        return {path.rsplit("/", 1)[-1]: digest for path, digest in string_map(rows[0][0]).items()}


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
