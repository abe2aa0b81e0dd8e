"""The pipeline store, as the gates read it: validation runs, compliance verdicts, SQLAgent records.

The upstream agents write three tables (DDL: `schema/pipeline-store.sql`); the gates read
them through a `VerdictSource`, either straight from PostgreSQL/Supabase
(`DatabaseVerdicts`) or from an HTTP endpoint in front of the same rows (`HttpVerdicts`).
Every failure to read (unreachable, timed out, malformed row) is a `GateError` with
`gate="store"`: the gates fail closed.

The HTTP interface, defined here (JSON bodies are the rows, timestamps ISO 8601 with offset):

    GET {url}/validation-runs/{run_id}        200 {"id", "status", "agent_id", "created_at",
                                                   "finished_at", "artifact_digests"} | 404
    GET {url}/compliance-verdicts/{run_id}    200 [{"id", "validation_run_id", "validator_id",
                                                    "verdict", "artifact_digests", "decided_at",
                                                    "reason"}, ...] (a single object is accepted) | 404
    GET {url}/sqlagent-migrations/{filename}  200 [{"id", "sqlagent_run_id", "agent_id", "filename",
                                                    "version", "sha256", "undo_filename",
                                                    "undo_sha256", "recorded_at"}, ...]: every
                                                    record naming the file as migration or undo | 404
    GET {url}/sqlagent-runs/{sqlagent_run_id}/migrations
                                              200 [the same records, every one of that run] | 404

Ids and file names are percent-encoded as one path segment; redirects are not followed; an
`Authorization: Bearer <token>` header is sent when a token is configured.

The deploy path never writes to the store (`store_seed` writes what the upstream agents would,
for demos and tests).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import quote

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import requests

from orchestrator.contract import GatesConfig
from orchestrator.errors import ConfigError, GateError
from orchestrator.redaction import Secret, mask_url, redact
from orchestrator.sqlagent import SQLAGENT_ID, SqlAgentRecord
from orchestrator.store_rows import ComplianceVerdict, ValidationRun

__all__ = [
    "STORE_DDL",
    "ComplianceVerdict",
    "DatabaseVerdicts",
    "HttpVerdicts",
    "ValidationRun",
    "VerdictSource",
    "open_verdict_source",
]

STORE_DDL = Path(__file__).resolve().parent.parent / "schema" / "pipeline-store.sql"
_BODY_TAIL = 300
_SQLAGENT_COLUMNS = "id, sqlagent_run_id, agent_id, filename, version, sha256, undo_filename, undo_sha256, recorded_at"
# Per deployed file only the records that decide the gate: the newest of the SQLAgent's with exactly the
# file's sha256 and the oldest of each other agent's, chosen in the server on narrow rows ("C" order: no
# collation cost). A set recorded again at every deploy otherwise shipped its whole history to be parsed
# here, growing each time (0.14 s at five recordings of 6,000 files, 0.09 s this way; 0.30 s and 0.18 s
# at twelve).
_DECIDING_SQLAGENT_RECORDS = f"""
WITH deployed AS (
    SELECT name COLLATE "C" AS name, sha FROM unnest(%(names)s::text[], %(shas)s::text[]) AS d (name, sha)
),
matched AS (
    SELECT d.name, m.id, m.agent_id, m.recorded_at FROM deployed d
    JOIN sqlagent_migrations m ON m.filename = d.name AND m.sha256 = d.sha
    UNION ALL
    SELECT d.name, m.id, m.agent_id, m.recorded_at FROM deployed d
    JOIN sqlagent_migrations m ON m.undo_filename = d.name AND m.undo_sha256 = d.sha
),
deciding AS (
    (SELECT DISTINCT ON (name) id FROM matched WHERE agent_id = %(sqlagent)s
     ORDER BY name, recorded_at DESC, id COLLATE "C" DESC)
    UNION
    (SELECT DISTINCT ON (name, agent_id) id FROM matched WHERE agent_id <> %(sqlagent)s
     ORDER BY name, agent_id, recorded_at, id COLLATE "C")
)
SELECT {_SQLAGENT_COLUMNS} FROM sqlagent_migrations WHERE id IN (SELECT id FROM deciding) ORDER BY recorded_at, id
"""
_Row = TypeVar("_Row")


@runtime_checkable
class VerdictSource(Protocol):
    """Where the gates read verdicts. Read-only; every method may be called any number of times."""

    def describe(self) -> str:
        """Where the verdicts come from, printable (no secrets)."""

    def validation_run(self, run_id: str) -> ValidationRun | None:
        """The run with this id, or None if there is none.

        Raises GateError(gate="store") when the store is unreachable, too slow or returns a malformed row.
        """

    def compliance_verdict(self, run_id: str) -> ComplianceVerdict | None:
        """The verdict in force for this run (the newest one), or None if there is none.

        Raises GateError(gate="store") as `validation_run` does.
        """

    def sqlagent_records(self, filenames: Sequence[str]) -> list[SqlAgentRecord]:
        """Every SQLAgent record naming one of `filenames` as its migration or its undo script ([] if none).

        Raises GateError(gate="store") as `validation_run` does.
        """

    def sqlagent_matches(self, deployed: Mapping[str, str]) -> list[SqlAgentRecord]:
        """The records deciding the provenance gate for `deployed` (file name -> sha256), as
        `SqlAgentRecords.sqlagent_matches` defines them. Raises GateError(gate="store") as `validation_run` does.
        """

    def sqlagent_run(self, sqlagent_run_id: str) -> list[SqlAgentRecord]:
        """Every record of one SQLAgent run ([] if none). Raises GateError(gate="store") as `validation_run` does."""


class DatabaseVerdicts:
    """Reads the pipeline store tables with psycopg2: parameterised queries in a READ ONLY transaction.

    The reads of one gate check share a session, opened on the first (one per read was a third of a
    run's connections); a session found broken is opened again once. It ends with the object.
    """

    def __init__(self, dsn: Secret, timeout: float) -> None:
        try:
            parts = psycopg2.extensions.parse_dsn(dsn.reveal())
        except psycopg2.Error as exc:
            raise ConfigError(
                "pipeline store DSN: not a valid PostgreSQL connection string (postgresql://user:pw@host:port/db)"
            ) from exc
        self._dsn = dsn
        self._timeout = timeout
        self._conn: psycopg2.extensions.connection | None = None
        self._where = f"{parts.get('host', 'localhost')}:{parts.get('port', '5432')}/{parts.get('dbname', '')}"

    def describe(self) -> str:
        return f"database {self._where}"

    def validation_run(self, run_id: str) -> ValidationRun | None:
        row = self._fetch_one(
            "read validation run",
            "SELECT id, status, agent_id, created_at, finished_at, artifact_digests FROM validation_runs WHERE id = %s",
            run_id,
        )
        return None if row is None else _parse(ValidationRun.from_row, row, self.describe(), "validation_runs")

    def compliance_verdict(self, run_id: str) -> ComplianceVerdict | None:
        row = self._fetch_one(
            "read compliance verdict",
            "SELECT id, validation_run_id, validator_id, verdict, artifact_digests, decided_at, reason "
            "FROM compliance_verdicts WHERE validation_run_id = %s ORDER BY decided_at DESC, id DESC LIMIT 1",
            run_id,
        )
        return None if row is None else _parse(ComplianceVerdict.from_row, row, self.describe(), "compliance_verdicts")

    def sqlagent_records(self, filenames: Sequence[str]) -> list[SqlAgentRecord]:
        rows = self._fetch(
            "read SQLAgent records",
            f"SELECT {_SQLAGENT_COLUMNS} FROM sqlagent_migrations "
            "WHERE filename = ANY(%s) OR undo_filename = ANY(%s) ORDER BY recorded_at, id",
            (list(filenames), list(filenames)),
            f"{len(filenames)} migration file(s)",
            {"files": ", ".join(filenames)},
        )
        return [_parse(SqlAgentRecord.from_row, row, self.describe(), "sqlagent_migrations") for row in rows]

    def sqlagent_matches(self, deployed: Mapping[str, str]) -> list[SqlAgentRecord]:
        names = sorted(deployed)
        rows = self._fetch(
            "read SQLAgent records",
            _DECIDING_SQLAGENT_RECORDS,
            {"names": names, "shas": [deployed[name] for name in names], "sqlagent": SQLAGENT_ID},
            f"{len(names)} migration file(s)",
            {"files": ", ".join(names)},
        )
        return [_parse(SqlAgentRecord.from_row, row, self.describe(), "sqlagent_migrations") for row in rows]

    def sqlagent_run(self, sqlagent_run_id: str) -> list[SqlAgentRecord]:
        rows = self._fetch(
            "read SQLAgent run",
            f"SELECT {_SQLAGENT_COLUMNS} FROM sqlagent_migrations WHERE sqlagent_run_id = %s ORDER BY recorded_at, id",
            (sqlagent_run_id,),
            f"SQLAgent run {sqlagent_run_id!r}",
            {"sqlagent_run_id": sqlagent_run_id},
        )
        return [_parse(SqlAgentRecord.from_row, row, self.describe(), "sqlagent_migrations") for row in rows]

    def _fetch_one(self, operation: str, sql: str, run_id: str) -> dict[str, Any] | None:
        rows = self._fetch(operation, sql, (run_id,), f"run {run_id!r}", {"run_id": run_id}, limit=1)
        return rows[0] if rows else None

    def _fetch(
        self,
        operation: str,
        sql: str,
        params: tuple[Any, ...] | Mapping[str, Any],
        subject: str,
        facts: dict[str, str],
        *,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        try:
            records, names = self._query(sql, params, limit)
        except psycopg2.Error as exc:
            raise GateError(
                f"pipeline store ({self.describe()}): {operation} for {subject} failed: "
                f"{_db_reason(exc, self._timeout)}; the gates fail closed, nothing was touched",
                gate="store",
                facts={**facts, "store": self.describe(), "operation": operation},
            ) from None
        return [dict(zip(names, record, strict=True)) for record in records]

    def _query(
        self, sql: str, params: tuple[Any, ...] | Mapping[str, Any], limit: int | None
    ) -> tuple[list[Any], list[str]]:
        for attempt in (1, 2):
            if self._conn is None or self._conn.closed:
                # libpq rounds connect_timeout to whole seconds and treats 1 as 2.
                self._conn = psycopg2.connect(
                    self._dsn.reveal(),
                    connect_timeout=max(2, math.ceil(self._timeout)),
                    application_name="deploy-orchestrator-gates",
                )
                self._conn.set_session(readonly=True)
            conn = self._conn
            try:
                with conn.cursor() as cur:
                    # SET LOCAL, not a startup option: it also works behind transaction-mode poolers.
                    cur.execute("SET LOCAL statement_timeout = %s", (max(1, int(self._timeout * 1000)),))
                    cur.execute(sql, params)
                    records = cur.fetchmany(limit) if limit else cur.fetchall()
                    names = [column[0] for column in cur.description or ()]
                conn.rollback()
                return records, names
            except psycopg2.Error as exc:
                lost = conn.closed and isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError))
                if not conn.closed:
                    with contextlib.suppress(psycopg2.Error):
                        conn.rollback()
                else:
                    self._conn = None
                if not lost or attempt == 2:
                    raise
        raise AssertionError("unreachable")


def _db_reason(exc: psycopg2.Error, timeout: float) -> str:
    if isinstance(exc, psycopg2.errors.QueryCanceled):
        return f"no answer within {timeout:g} s (statement_timeout)"
    if isinstance(exc, psycopg2.errors.UndefinedTable):
        return f"{_first_line(exc)}; load {STORE_DDL.name} (schema/) into the store"
    if isinstance(exc, psycopg2.OperationalError) and "timeout" in str(exc).lower():
        return f"could not connect within {max(2, math.ceil(timeout))} s (connect_timeout)"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = redact(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class HttpVerdicts:
    """Reads verdicts from an HTTP endpoint serving the rows (interface in the module docstring)."""

    def __init__(self, url: str, token: Secret | None, timeout: float) -> None:
        self._url = url.rstrip("/")
        self._token = token
        self._timeout = timeout

    def describe(self) -> str:
        return f"http {mask_url(self._url)}"

    def validation_run(self, run_id: str) -> ValidationRun | None:
        body = self._get("read validation run", f"/validation-runs/{quote(run_id, safe='')}", run_id)
        if body is None:
            return None
        if not isinstance(body, dict):
            raise self._malformed(run_id, "validation run: expected a JSON object")
        return _parse(ValidationRun.from_row, body, self.describe(), "validation run")

    def compliance_verdict(self, run_id: str) -> ComplianceVerdict | None:
        body = self._get("read compliance verdicts", f"/compliance-verdicts/{quote(run_id, safe='')}", run_id)
        if body is None:
            return None
        rows = [body] if isinstance(body, dict) else body
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise self._malformed(run_id, "compliance verdicts: expected a JSON array of objects")
        verdicts = [_parse(ComplianceVerdict.from_row, row, self.describe(), "compliance verdict") for row in rows]
        if not verdicts:
            return None
        return max(verdicts, key=lambda v: (v.decided_at, v.id))

    def sqlagent_records(self, filenames: Sequence[str]) -> list[SqlAgentRecord]:
        records: list[SqlAgentRecord] = []
        for name in filenames:
            rows = self._rows("read SQLAgent records", f"/sqlagent-migrations/{quote(name, safe='')}", f"file {name}")
            # Only what names the file asked for counts, whatever else the service sends.
            records += [r for r in rows if name in (r.filename, r.undo_filename)]
        return records

    def sqlagent_matches(self, deployed: Mapping[str, str]) -> list[SqlAgentRecord]:
        # The interface serves every record naming a file; only those with its sha256 may decide.
        records = self.sqlagent_records(sorted(deployed))
        return [r for r in records if any(deployed.get(name) == sha for name, sha in r.files().items())]

    def sqlagent_run(self, sqlagent_run_id: str) -> list[SqlAgentRecord]:
        path = f"/sqlagent-runs/{quote(sqlagent_run_id, safe='')}/migrations"
        rows = self._rows("read SQLAgent run", path, f"SQLAgent run {sqlagent_run_id!r}")
        return [r for r in rows if r.sqlagent_run_id == sqlagent_run_id]

    def _rows(self, operation: str, path: str, subject: str) -> list[SqlAgentRecord]:
        body = self._get(operation, path, "", subject=subject)
        if body is None:
            return []
        if not isinstance(body, list) or not all(isinstance(row, dict) for row in body):
            raise self._malformed("", f"{operation} ({subject}): expected a JSON array of objects")
        return [_parse(SqlAgentRecord.from_row, row, self.describe(), "SQLAgent record") for row in body]

    def _get(self, operation: str, path: str, run_id: str, *, subject: str | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        facts = {"run_id": run_id, "store": self.describe(), "operation": operation}
        where = f"pipeline store ({self.describe()}): {operation} for {subject or f'run {run_id!r}'}"
        try:
            response = requests.get(
                self._url + path, headers=headers, timeout=(self._timeout, self._timeout), allow_redirects=False
            )
        except requests.Timeout:
            raise GateError(
                f"{where}: no answer within {self._timeout:g} s; the gates fail closed, nothing was touched",
                gate="store",
                facts=facts,
            ) from None
        except requests.RequestException as exc:
            raise GateError(
                f"{where}: unreachable ({type(exc).__name__}); the gates fail closed, nothing was touched",
                gate="store",
                facts=facts,
            ) from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            tail = redact(response.text[-_BODY_TAIL:]).strip()
            raise GateError(
                f"{where}: HTTP {response.status_code} ({tail or 'empty body'}); "
                "the gates fail closed, nothing was touched",
                gate="store",
                facts=facts,
            )
        try:
            return response.json()
        except ValueError:
            raise self._malformed(run_id, f"{operation}: the body is not JSON") from None

    def _malformed(self, run_id: str, detail: str) -> GateError:
        about = f" for run {run_id!r}" if run_id else ""
        return GateError(
            f"pipeline store ({self.describe()}) returned a malformed answer{about}: {detail}; "
            "the gates fail closed, nothing was touched",
            gate="store",
            facts={"run_id": run_id, "store": self.describe()},
        )


def open_verdict_source(config: GatesConfig, env: Mapping[str, str], *, default_dsn_env_var: str) -> VerdictSource:
    """The source `gates.source` names. Raises ConfigError naming the missing setting or variable."""
    if config.source == "http":
        if not config.url:
            raise ConfigError("gates.url: required with gates.source http (the verdict endpoint's base URL)")
        token = None
        if config.token_env_var:
            value = env.get(config.token_env_var, "")
            if not value:
                raise ConfigError(f"gates.token_env_var: the environment variable {config.token_env_var} is not set")
            token = Secret(value, config.token_env_var)
        return HttpVerdicts(config.url, token, config.timeout_seconds)
    name = config.dsn_env_var or default_dsn_env_var
    value = env.get(name, "")
    if not value:
        field = "gates.dsn_env_var" if config.dsn_env_var else "credentials.db_connection_env_var"
        raise ConfigError(f"{field}: the environment variable {name} (the pipeline store DSN) is not set")
    return DatabaseVerdicts(Secret(value, name), config.timeout_seconds)


def _parse(parser: Callable[[Mapping[str, Any]], _Row], row: Mapping[str, Any], where: str, what: str) -> _Row:
    try:
        return parser(row)
    except ValueError as exc:
        raise GateError(
            f"pipeline store ({where}) holds a malformed {what} row: {exc}; the gates fail closed",
            gate="store",
            facts={"store": where},
        ) from None
