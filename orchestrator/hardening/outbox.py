"""The durable outbox: preference pairs are stored here before any delivery is tried.

Primary store: the `hardening_outbox` table in the ledger database (DDL in schema/ledger.sql).
Fallback store, used when the database cannot be reached (or none is configured): a JSONL file
under the workspace, `.deploy-orchestrator/outbox/pending.jsonl`. The next run that reaches the
database imports the file into the table (the pair id is the primary key, so an import repeated
after a crash duplicates nothing) and removes the imported lines from the file.

Exactly-once bookkeeping. A flusher `claim()`s the oldest pending events; in the database the
claim is one transaction holding the rows `FOR UPDATE SKIP LOCKED`, so a second flusher running
at the same time takes other rows, never the same ones, and a row delivered and committed by one
is no longer pending for the other. Outcomes are written back in one UPDATE when the claim ends.
If the process dies between a POST and that commit, the row stays pending and is sent again with
the same Idempotency-Key: the only window in which agentbench's own dedupe is needed, and it is as
small as one claim (`batch_size` events). The file store is claimed under an exclusive `flock`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psycopg2
import psycopg2.extensions
import psycopg2.extras
from psycopg2 import sql

from orchestrator.errors import OrchestratorError
from orchestrator.hardening.fallback import FallbackFile
from orchestrator.hardening.pairs import PreferencePair
from orchestrator.ledger.database import LedgerError, check_schema_name, connect, ensure_tables
from orchestrator.redaction import Secret, mask_url, redact

__all__ = ["FALLBACK_FILE", "Claim", "Outbox", "OutboxError", "OutboxEvent", "Pending"]

log = logging.getLogger(__name__)

FALLBACK_FILE = Path(".deploy-orchestrator/outbox/pending.jsonl")
Store = Literal["database", "file"]
Outcome = Literal["delivered", "failed", "rejected"]


class OutboxError(OrchestratorError):
    """Neither the database nor the fallback file could store a pair."""

    step = "hardening"


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """A stored pair: where it is (`database` or `file`) and a printable location (DSN masked)."""

    id: str
    pair: PreferencePair
    stored: Store
    location: str


@dataclass(frozen=True, slots=True)
class Pending:
    """One undelivered event, as `pending()` lists it."""

    id: str
    created_at: str
    deployment_id: str
    priority: str
    stored: Store
    attempts: int = 0
    last_error: str | None = None


@dataclass
class Claim:
    """Events claimed for delivery, oldest first; record each one's outcome with `mark()`."""

    stored: Store
    events: list[tuple[str, dict[str, Any]]]
    outcomes: dict[str, tuple[Outcome, str | None]] = field(default_factory=dict)
    """id -> (outcome, submission_id for delivered, error text otherwise)."""

    def mark(self, event_id: str, outcome: Outcome, detail: str | None = None) -> None:
        self.outcomes[event_id] = (outcome, detail)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Outbox:
    """The outbox over an optional ledger DSN and the workspace (for the fallback file)."""

    def __init__(
        self,
        dsn: Secret | None,
        workspace: Path,
        *,
        schema: str = "public",
        connect_timeout: float = 3.0,
    ) -> None:
        self._dsn = dsn
        self._schema = check_schema_name(schema)
        self._connect_timeout = connect_timeout
        self._conn: psycopg2.extensions.connection | None = None
        # Set after a failed connect: the rest of this run uses the file instead of paying the
        # connect timeout again on every call. The next run tries the database afresh.
        self._unavailable = False
        self.fallback_path = workspace / FALLBACK_FILE
        self._file = FallbackFile(self.fallback_path)

    # --- connections ------------------------------------------------------------------------

    @property
    def location(self) -> str:
        return mask_url(self._dsn.reveal()) if self._dsn else str(self.fallback_path)

    def _table(self) -> sql.Composed:
        return sql.SQL("{}.hardening_outbox").format(sql.Identifier(self._schema))

    def _connection(self) -> psycopg2.extensions.connection | None:
        """The open connection, (re)connecting if needed; None when there is no usable database."""
        if self._dsn is None or self._unavailable:
            return None
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = connect(self._dsn, connect_timeout=self._connect_timeout)
            ensure_tables(conn, self._schema)
        except (LedgerError, psycopg2.Error) as exc:
            log.warning("outbox database unavailable, using %s: %s", self.fallback_path, redact(str(exc)))
            self._unavailable = True
            return None
        self._conn = conn
        return conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with suppress(psycopg2.Error):
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        self._drop_connection()

    def is_database_available(self) -> bool:
        return self._connection() is not None

    # --- enqueue ----------------------------------------------------------------------------

    def enqueue(self, pair: PreferencePair) -> OutboxEvent:
        """Store the pair durably (database, else the fallback file). Idempotent per pair id.

        Raises OutboxError only when both stores fail.
        """
        conn = self._connection()
        if conn is not None:
            try:
                with conn, conn.cursor() as cur:
                    cur.execute(
                        sql.SQL(
                            "INSERT INTO {} (id, deployment_id, priority, pair) VALUES (%s, %s, %s, %s::jsonb)"
                            " ON CONFLICT (id) DO NOTHING"
                        ).format(self._table()),
                        (
                            pair.id,
                            str(pair.metadata.get("deployment_id", "")),
                            pair.priority,
                            json.dumps(pair.to_json()),
                        ),
                    )
                return OutboxEvent(pair.id, pair, "database", self.location)
            except psycopg2.Error as exc:
                log.warning("outbox insert failed, falling back to %s: %s", self.fallback_path, redact(str(exc)))
                self._drop_connection()
        entry = {
            "id": pair.id,
            "created_at": _now_iso(),
            "deployment_id": str(pair.metadata.get("deployment_id", "")),
            "priority": pair.priority,
            "status": "pending",
            "attempts": 0,
            "pair": pair.to_json(),
        }
        try:
            with self._file.lock():
                self._file.append(entry)
        except OSError as exc:
            raise OutboxError(
                f"could not store preference pair {pair.id}: database unavailable and {self.fallback_path} "
                f"not writable ({exc.strerror}); check the ledger DSN and that the workspace is writable"
            ) from None
        return OutboxEvent(pair.id, pair, "file", str(self.fallback_path))

    def import_file(self) -> int:
        """Move the fallback file's events into the table (no duplicates); returns how many moved."""
        if not self._file.exists():
            return 0
        conn = self._connection()
        if conn is None:
            return 0
        with self._file.lock():
            entries = self._file.read()
            if not entries:
                self._file.write([])
                return 0
            rows = [
                (
                    e["id"],
                    e.get("created_at") or _now_iso(),
                    e.get("deployment_id", ""),
                    e.get("priority", "medium"),
                    json.dumps(e["pair"]),
                    e.get("status", "pending"),
                    int(e.get("attempts", 0)),
                    e.get("last_error"),
                )
                for e in entries
            ]
            try:
                with conn, conn.cursor() as cur:
                    psycopg2.extras.execute_values(
                        cur,
                        sql.SQL(
                            "INSERT INTO {} (id, created_at, deployment_id, priority, pair, status, attempts,"
                            " last_error) VALUES %s ON CONFLICT (id) DO NOTHING"
                        )
                        .format(self._table())
                        .as_string(conn),
                        rows,
                        template="(%s::uuid, %s::timestamptz, %s, %s, %s::jsonb, %s, %s, %s)",
                    )
            except psycopg2.Error as exc:
                log.warning("importing %s into the outbox table failed: %s", self.fallback_path, redact(str(exc)))
                self._drop_connection()
                return 0
            # Committed: now the file may forget them. A crash right here re-imports them next
            # time, and ON CONFLICT DO NOTHING keeps that harmless.
            self._file.write([])
        log.info("imported %d outbox event(s) from %s", len(entries), self.fallback_path)
        return len(entries)

    # --- claiming ---------------------------------------------------------------------------

    @contextmanager
    def claim(self, limit: int) -> Iterator[Claim]:
        """Claim up to `limit` pending events, oldest first; outcomes are saved when the block exits.

        Uses the database when reachable, else the fallback file. An event without an outcome
        stays pending untouched.
        """
        conn = self._connection()
        if conn is None:
            with self._file.lock():
                entries = self._file.read()
                pending = sorted((e for e in entries if e.get("status", "pending") == "pending"), key=_created)
                claim = Claim("file", [(e["id"], e["pair"]) for e in pending[:limit]])
                try:
                    yield claim
                finally:
                    self._save_file_outcomes(entries, claim)
            return
        try:
            cur = conn.cursor()
            cur.execute(
                sql.SQL(
                    "SELECT id::text, pair FROM {} WHERE status = 'pending' ORDER BY created_at, seq"
                    " LIMIT %s FOR UPDATE SKIP LOCKED"
                ).format(self._table()),
                (limit,),
            )
            claim = Claim("database", [(row[0], row[1]) for row in cur.fetchall()])
        except psycopg2.Error as exc:
            log.warning("claiming outbox events failed: %s", redact(str(exc)))
            self._drop_connection()
            yield Claim("database", [])
            return
        try:
            yield claim
        finally:
            self._save_db_outcomes(conn, cur, claim)

    def _save_db_outcomes(self, conn: Any, cur: Any, claim: Claim) -> None:
        try:
            if claim.outcomes:
                rows = [
                    (
                        event_id,
                        "pending" if outcome == "failed" else outcome,
                        detail if outcome == "delivered" else None,
                        None if outcome == "delivered" else redact(detail or "")[:1000],
                    )
                    for event_id, (outcome, detail) in claim.outcomes.items()
                ]
                psycopg2.extras.execute_values(
                    cur,
                    sql.SQL(
                        "UPDATE {} AS t SET status = v.status, attempts = t.attempts + 1, last_attempt_at = now(),"
                        " last_error = v.error, submission_id = COALESCE(v.submission_id, t.submission_id),"
                        " delivered_at = CASE WHEN v.status = 'delivered' THEN now() ELSE t.delivered_at END"
                        " FROM (VALUES %s) AS v(id, status, submission_id, error) WHERE t.id = v.id::uuid"
                    )
                    .format(self._table())
                    .as_string(conn),
                    rows,
                )
            conn.commit()
        except psycopg2.Error as exc:
            # The rows stay pending and are re-sent with the same Idempotency-Key next time.
            log.error("recording delivery outcomes in the outbox failed: %s", redact(str(exc)))
            self._drop_connection()
        finally:
            cur.close()

    def _save_file_outcomes(self, entries: list[dict[str, Any]], claim: Claim) -> None:
        if not claim.outcomes:
            return
        kept = []
        for entry in entries:
            outcome = claim.outcomes.get(entry["id"])
            if outcome is None:
                kept.append(entry)
            elif outcome[0] != "delivered":
                # Delivered events leave the file; the others stay with their attempt recorded.
                entry = {**entry, "attempts": int(entry.get("attempts", 0)) + 1, "last_error": outcome[1]}
                if outcome[0] == "rejected":
                    entry["status"] = "rejected"
                kept.append(entry)
            else:
                log.info(
                    "outbox event %s delivered from %s (submission %s)", entry["id"], self.fallback_path, outcome[1]
                )
        try:
            self._file.write(kept)
        except OSError as exc:
            log.error("rewriting %s failed (%s); delivered events may be sent again", self.fallback_path, exc.strerror)

    # --- reading ----------------------------------------------------------------------------

    def pending(self) -> list[Pending]:
        """Every undelivered event, database and file, oldest first."""
        found: list[Pending] = []
        conn = self._connection()
        if conn is not None:
            try:
                with conn, conn.cursor() as cur:
                    cur.execute(
                        sql.SQL(
                            "SELECT id::text, created_at, deployment_id, priority, attempts, last_error FROM {}"
                            " WHERE status = 'pending' ORDER BY created_at, seq"
                        ).format(self._table())
                    )
                    found.extend(
                        Pending(r[0], r[1].isoformat(), r[2], r[3], "database", r[4], r[5]) for r in cur.fetchall()
                    )
            except psycopg2.Error as exc:
                log.warning("listing the outbox failed: %s", redact(str(exc)))
                self._drop_connection()
        with self._file.lock():
            found.extend(
                Pending(
                    e["id"],
                    e.get("created_at", ""),
                    e.get("deployment_id", ""),
                    e.get("priority", ""),
                    "file",
                    int(e.get("attempts", 0)),
                    e.get("last_error"),
                )
                for e in self._file.read()
                if e.get("status", "pending") == "pending"
            )
        return sorted(found, key=lambda p: p.created_at)


def _created(entry: dict[str, Any]) -> str:
    return str(entry.get("created_at", ""))
