"""Run migrations against PostgreSQL: connect, lock, plan, apply, undo.

    with MigrationRunner(dsn, config, deployment_id=..., installed_by=...) as runner:
        plan = runner.plan(scripts, approved)   # refuses before anything is touched
        applied = runner.apply(plan)            # each migration commits with its history row
        runner.undo(applied)                    # on rollback: newest first, U scripts

Entering connects (autocommit), refuses transaction poolers, takes the session advisory lock
(waiting up to `lock_wait_seconds`) and creates the history table on first use. The lock is held
until exit, across plan, apply and undo, so no other run migrates in between. Plan mode uses
`read_only=True`: same checks and plan, no lock, nothing created, a READ ONLY session.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any

import psycopg2
import psycopg2.extensions

from orchestrator.advisory_lock import migration_lock
from orchestrator.contract import MigrationResult, MigrationsConfig
from orchestrator.errors import MigrationError
from orchestrator.migrations import history as hist
from orchestrator.migrations.connection import check_session_pooling, connect, describe_dsn, server_version
from orchestrator.migrations.failures import EndedTransactionError, failure_message
from orchestrator.migrations.history import HistoryRow
from orchestrator.migrations.leftovers import Leftovers, clean_up
from orchestrator.migrations.lint import lint
from orchestrator.migrations.plan import MigrationPlan, build_plan, pending_scripts
from orchestrator.migrations.scripts import MigrationScript, version_key
from orchestrator.migrations.statements import split_statements
from orchestrator.recovery import crash_points
from orchestrator.redaction import Secret, redact

__all__ = ["MigrationRunner"]

log = logging.getLogger(__name__)


class MigrationRunner:
    """One run's migrations on one database. Use as a context manager; not thread-safe."""

    def __init__(
        self,
        dsn: Secret,
        config: MigrationsConfig,
        *,
        deployment_id: str,
        installed_by: str,
        read_only: bool = False,
        connect_timeout_seconds: float = 10.0,
    ) -> None:
        self._dsn = dsn
        self._config = config
        self.deployment_id = deployment_id
        self.installed_by = installed_by
        self.read_only = read_only
        self._connect_timeout = connect_timeout_seconds
        self._where = describe_dsn(dsn)
        self._lock = migration_lock(config.history_schema)
        self._conn: Any = None
        self._locked = False
        self._scripts: tuple[MigrationScript, ...] = ()
        # The results of the latest apply() or undo(), filled as it goes, so also after it raised.
        self.last_results: list[MigrationResult] = []
        self.application_name = f"deploy-orchestrator {deployment_id}"

    # --- session -------------------------------------------------------------------------------

    def __enter__(self) -> MigrationRunner:
        self._conn = connect(
            self._dsn, application_name=self.application_name, connect_timeout_seconds=self._connect_timeout
        )
        try:
            check_session_pooling(self._conn, self._dsn, application_name=self.application_name)
            with self._conn.cursor() as cur:
                if self.read_only:
                    cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                    return self
                self._lock.acquire(cur, wait_seconds=self._config.lock_wait_seconds, where=self._where)
                self._locked = True
                hist.ensure_table(cur, self._config.history_schema)
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self._locked and not conn.closed:
                with conn.cursor() as cur:
                    self._lock.release(cur)
        except psycopg2.Error as exc:
            # Closing the session releases the lock anyway; this only loses the early release.
            log.warning("could not release the migration lock cleanly: %s", redact(str(exc)))
        finally:
            self._locked = False
            conn.close()

    @property
    def _cursor(self) -> Any:
        if self._conn is None:
            raise MigrationError("MigrationRunner used outside its `with` block")
        return self._conn.cursor()

    # --- reading ---------------------------------------------------------------------------------

    def history(self) -> list[HistoryRow]:
        """Every history row, oldest first ([] before the table exists)."""
        with self._cursor as cur:
            return hist.read_rows(cur, self._config.history_schema)

    def applied_by(self, deployment_id: str) -> list[MigrationResult]:
        """The migrations `deployment_id` applied that are still in place, oldest first (for rollback mode)."""
        return [
            MigrationResult(
                version=row.version or "",
                filename=row.script,
                duration_ms=float(row.execution_time),
                success=True,
                direction="up",
            )
            for row in self.history()
            if row.is_applied and row.deployment_id == deployment_id
        ]

    def clean_up_leftovers(self, scripts: Sequence[MigrationScript], *, deployment_id: str) -> Leftovers:
        """Clean what killed no-transaction scripts left (leftovers.py), recording for `deployment_id`."""
        self._require_writable("clean up")
        with self._cursor as cur:
            return clean_up(
                cur,
                pending_scripts(scripts, self.history()),
                record=lambda c, script: self._insert_history(
                    c, 0.0, script=script, kind=hist.APPLY, deployment_id=deployment_id
                ),
            )

    # --- deciding --------------------------------------------------------------------------------

    def plan(self, scripts: Sequence[MigrationScript], approved: Mapping[str, str] | None) -> MigrationPlan:
        """The plan for `scripts` against this database. Touches nothing.

        `approved` maps file name to the sha256 the compliance verdict approved; None means no
        verdict source is configured (then every file passes; that policy belongs to the gates).
        Raises MigrationError (with `.plan` and `.problems`) if anything refuses the run: checksum
        drift, out-of-order versions, unapproved files, missing undo scripts, refusing lint findings.
        """
        self._scripts = tuple(scripts)
        rows = self.history()
        report = lint(
            pending_scripts(scripts, rows), self._config, pg_version=server_version(self._conn) if self._conn else None
        )
        plan = build_plan(
            scripts,
            rows,
            self._config,
            approved,
            report,
            history_table=hist.table_name(self._config.history_schema),
        )
        if plan.is_refused:
            count = len(plan.refusals)
            error = _error(
                f"migrations refused before anything was touched ({count} problem{'s' if count != 1 else ''}):\n"
                + "\n".join(f"  - {reason}" for reason in plan.refusals),
                plan=plan,
                problems=plan.refusals,
            )
            raise error
        return plan

    # --- doing -----------------------------------------------------------------------------------

    def apply(self, plan: MigrationPlan) -> list[MigrationResult]:
        """Apply the plan in order; each migration commits together with its history row.

        Raises MigrationError (with `.results`, the failed one last) at the first failure; what
        committed before it stays applied (the caller's rollback undoes it with `undo`).
        """
        self._require_writable("apply")
        if plan.is_refused:
            raise _error("this plan was refused: " + "; ".join(plan.refusals), plan=plan, problems=plan.refusals)
        results: list[MigrationResult] = []
        self.last_results = results
        progress = _Progress(len(plan.pending), "applied")
        for item in plan.pending:
            script = item.script
            started = time.perf_counter()
            try:
                self._run(script, record=partial(self._insert_history, script=script, kind=hist.APPLY))
            except (psycopg2.Error, EndedTransactionError) as exc:
                elapsed = (time.perf_counter() - started) * 1000
                message = failure_message(script, exc, "apply", connection=self._conn, config=self._config)
                results.append(
                    MigrationResult(script.version, script.filename, elapsed, False, direction="up", error=message)
                )
                raise _error(message, migration=script.filename, results=results) from None
            elapsed = (time.perf_counter() - started) * 1000
            results.append(MigrationResult(script.version, script.filename, elapsed, True, direction="up"))
            progress.done(script.filename, elapsed)
            crash_points.reach("between-migrations")
        return results

    def undo(
        self, applied: Sequence[MigrationResult], *, scripts: Sequence[MigrationScript] | None = None
    ) -> list[MigrationResult]:
        """Undo the successful `applied` migrations, newest first, each with its U script in its own transaction.

        Undo scripts come from the last `plan()` or from `scripts` (a rollback-mode run). A migration
        listed in `migrations.irreversible` without an undo script is skipped and reported as left in
        place (success=True, `error` says so); one already undone is skipped likewise, so a retried
        rollback is safe. Raises MigrationError (with `.results`) at the first undo that fails.
        """
        self._require_writable("undo")
        known = tuple(scripts) if scripts is not None else self._scripts
        undos = {s.key: s for s in known if s.kind == "undo"}
        current = {version_key(r.version): r for r in self.history() if r.is_applied and r.version}
        wanted = [r for r in applied if r.direction == "up" and r.success]
        # Newest first by the database's own order of installation, not by the caller's list.
        wanted.sort(key=lambda r: _rank(current, r), reverse=True)
        results: list[MigrationResult] = []
        self.last_results = results
        progress = _Progress(len(wanted), "undid")
        for result in wanted:
            key = version_key(result.version)
            row = current.get(key)
            if row is None:
                results.append(_skipped(result, "not undone: it is not applied (already undone?)"))
                continue
            undo = undos.get(key)
            if undo is None:
                if result.filename in self._config.irreversible:
                    note = "not undone: marked irreversible (migrations.irreversible); its changes remain in place"
                    log.warning("%s %s", result.filename, note)
                    results.append(_skipped(result, note))
                    continue
                message = f"cannot undo {result.filename}: no undo script U{result.version.replace('.', '_')}__*.sql"
                results.append(MigrationResult(result.version, result.filename, 0.0, False, "down", message))
                raise _error(message, migration=result.filename, results=results)
            started = time.perf_counter()
            try:
                self._run(undo, record=partial(self._record_undo, undo=undo, row=row))
            except (psycopg2.Error, EndedTransactionError) as exc:
                elapsed = (time.perf_counter() - started) * 1000
                message = failure_message(undo, exc, "undo", connection=self._conn, config=self._config)
                results.append(MigrationResult(undo.version, undo.filename, elapsed, False, "down", message))
                raise _error(message, migration=undo.filename, results=results) from None
            elapsed = (time.perf_counter() - started) * 1000
            results.append(MigrationResult(undo.version, undo.filename, elapsed, True, "down"))
            progress.done(result.filename, elapsed, undo=undo.filename)
        return results

    def _require_writable(self, action: str) -> None:
        if self._conn is None:
            raise MigrationError("MigrationRunner used outside its `with` block")
        if self.read_only:
            raise MigrationError(f"cannot {action}: this runner was opened read-only for plan mode")

    def _run(self, script: MigrationScript, *, record: Callable[[Any, float], None]) -> None:
        """Run one script and its history change; atomically unless the script opts out of a transaction."""
        timeout = f"{round(self._config.lock_timeout_seconds * 1000)}ms"
        conn = self._conn
        with conn.cursor() as cur:
            started = time.perf_counter()
            if script.transactional:
                try:
                    # One round trip for the opening and the script (three a migration, as a hand-written loop
                    # makes). Without parameters psycopg2 sends the text as is: a `%` in the SQL stays a `%`.
                    cur.execute(f"BEGIN; SET LOCAL lock_timeout = '{timeout}';\n{script.sql}")
                    if conn.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_INTRANS:
                        raise EndedTransactionError()
                    record(cur, (time.perf_counter() - started) * 1000)
                    cur.execute("COMMIT")
                except BaseException:
                    if not conn.closed:
                        cur.execute("ROLLBACK")
                    raise
                return
            cur.execute("SET lock_timeout = %s", (timeout,))
            try:
                for statement in split_statements(script.sql):
                    cur.execute(statement)
            finally:
                if not conn.closed:
                    cur.execute("RESET lock_timeout")
            crash_points.reach("inside-no-transaction")
            # The history row is transactional: a failed insert must not leave an aborted session for undo.
            cur.execute("BEGIN")
            try:
                record(cur, (time.perf_counter() - started) * 1000)
                cur.execute("COMMIT")
            except BaseException:
                if not conn.closed:
                    cur.execute("ROLLBACK")
                raise

    def _record_undo(self, cur: Any, elapsed_ms: float, *, undo: MigrationScript, row: HistoryRow) -> None:
        hist.mark_undone(cur, self._config.history_schema, row.installed_rank)
        self._insert_history(cur, elapsed_ms, script=undo, kind=hist.UNDO)

    def _insert_history(
        self, cur: Any, elapsed_ms: float, *, script: MigrationScript, kind: str, deployment_id: str | None = None
    ) -> None:
        hist.insert_row(
            cur,
            self._config.history_schema,
            version=script.version,
            description=script.description,
            type=kind,
            script=script.filename,
            checksum=script.checksum,
            installed_by=self.installed_by,
            execution_time_ms=elapsed_ms,
            deployment_id=deployment_id or self.deployment_id,
        )


class _Progress:
    """One log line per migration for a few; for many, about ten lines in all (every result keeps its own time)."""

    LISTED = 20

    def __init__(self, total: int, verb: str) -> None:
        self._total, self._verb, self._count, self._ms = total, verb, 0, 0.0
        self._every = 1 if total <= self.LISTED else -(-total // 10)

    def done(self, filename: str, elapsed_ms: float, *, undo: str | None = None) -> None:
        self._count += 1
        self._ms += elapsed_ms
        if self._every == 1:
            with_undo = f" with {undo}" if undo else ""
            log.info("%s %s%s in %.0f ms", self._verb, filename, with_undo, elapsed_ms)
        elif self._count % self._every == 0 or self._count == self._total:
            log.info(
                "%s %d of %d migrations in %.1f s (latest %s)",
                self._verb,
                self._count,
                self._total,
                self._ms / 1000,
                filename,
            )


def _rank(current: Mapping[tuple[int, ...], HistoryRow], result: MigrationResult) -> int:
    row = current.get(version_key(result.version))
    return row.installed_rank if row is not None else 0


def _skipped(result: MigrationResult, note: str) -> MigrationResult:
    return MigrationResult(result.version, result.filename, 0.0, True, direction="down", error=note)


def _error(
    message: str,
    *,
    migration: str | None = None,
    results: Sequence[MigrationResult] = (),
    plan: MigrationPlan | None = None,
    problems: Sequence[str] = (),
) -> MigrationError:
    """A MigrationError carrying its structured facts, the message redacted."""
    return MigrationError(redact(message), migration=migration, results=results, plan=plan, problems=problems)
