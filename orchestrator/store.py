"""The pipeline store, as the gates read it: validation runs and compliance verdicts.

The upstream agents write two tables (DDL: `schema/pipeline-store.sql`); the gates read
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

`run_id` is percent-encoded as one path segment; redirects are not followed; an
`Authorization: Bearer <token>` header is sent when a token is configured.

`create_store_tables` and `seed_verdicts` are for demos and tests only: they write what
the upstream agents would. The deploy path never writes to the store.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import quote

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import requests

from orchestrator.artifacts import ArtifactDigests
from orchestrator.contract import GatesConfig
from orchestrator.errors import ConfigError, GateError
from orchestrator.redaction import Secret, mask_url, redact

__all__ = [
    "STORE_DDL",
    "ComplianceVerdict",
    "DatabaseVerdicts",
    "HttpVerdicts",
    "ValidationRun",
    "VerdictSource",
    "create_store_tables",
    "open_verdict_source",
    "seed_verdicts",
]

STORE_DDL = Path(__file__).resolve().parent.parent / "schema" / "pipeline-store.sql"
_BODY_TAIL = 300
_Row = TypeVar("_Row")


@dataclass(frozen=True, slots=True)
class ValidationRun:
    """A ValidationAgent run: its status and the digests of what it tested."""

    id: str
    status: str
    agent_id: str
    created_at: datetime
    finished_at: datetime | None
    digests: ArtifactDigests

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ValidationRun:
        """Parse a row (database or HTTP JSON). Raises ValueError naming the bad field."""
        return cls(
            id=_text(row, "id"),
            status=_text(row, "status"),
            agent_id=_text(row, "agent_id"),
            created_at=_time(row, "created_at"),
            finished_at=None if row.get("finished_at") is None else _time(row, "finished_at"),
            digests=ArtifactDigests.from_dict(row.get("artifact_digests")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The HTTP JSON shape of the row."""
        return {
            "id": self.id,
            "status": self.status,
            "agent_id": self.agent_id,
            "created_at": self.created_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "artifact_digests": self.digests.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class ComplianceVerdict:
    """A ComplianceValidator verdict on one validation run, with the digests it approved."""

    id: str
    validation_run_id: str
    validator_id: str
    verdict: str
    digests: ArtifactDigests
    decided_at: datetime
    reason: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ComplianceVerdict:
        """Parse a row (database or HTTP JSON). Raises ValueError naming the bad field."""
        reason = row.get("reason")
        return cls(
            id=_text(row, "id"),
            validation_run_id=_text(row, "validation_run_id"),
            validator_id=_text(row, "validator_id"),
            verdict=_text(row, "verdict"),
            digests=ArtifactDigests.from_dict(row.get("artifact_digests")),
            decided_at=_time(row, "decided_at"),
            reason=reason if isinstance(reason, str) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The HTTP JSON shape of the row."""
        return {
            "id": self.id,
            "validation_run_id": self.validation_run_id,
            "validator_id": self.validator_id,
            "verdict": self.verdict,
            "artifact_digests": self.digests.to_dict(),
            "decided_at": self.decided_at.isoformat(),
            "reason": self.reason,
        }


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


class DatabaseVerdicts:
    """Reads the pipeline store tables with psycopg2: parameterised queries in a READ ONLY transaction."""

    def __init__(self, dsn: Secret, timeout: float) -> None:
        try:
            parts = psycopg2.extensions.parse_dsn(dsn.reveal())
        except psycopg2.Error as exc:
            raise ConfigError(
                "pipeline store DSN: not a valid PostgreSQL connection string (postgresql://user:pw@host:port/db)"
            ) from exc
        self._dsn = dsn
        self._timeout = timeout
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

    def _fetch_one(self, operation: str, sql: str, run_id: str) -> dict[str, Any] | None:
        conn = None
        try:
            # libpq rounds connect_timeout to whole seconds and treats 1 as 2.
            conn = psycopg2.connect(
                self._dsn.reveal(),
                connect_timeout=max(2, math.ceil(self._timeout)),
                application_name="deploy-orchestrator-gates",
            )
            conn.set_session(readonly=True)
            with conn.cursor() as cur:
                # SET LOCAL, not a startup option: it also works behind transaction-mode poolers.
                cur.execute("SET LOCAL statement_timeout = %s", (max(1, int(self._timeout * 1000)),))
                cur.execute(sql, (run_id,))
                record = cur.fetchone()
                names = [column[0] for column in cur.description or ()]
            conn.rollback()
        except psycopg2.Error as exc:
            raise GateError(
                f"pipeline store ({self.describe()}): {operation} for run {run_id!r} failed: "
                f"{_db_reason(exc, self._timeout)}; the gates fail closed, nothing was touched",
                gate="store",
                facts={"run_id": run_id, "store": self.describe(), "operation": operation},
            ) from None
        finally:
            if conn is not None:
                conn.close()
        return None if record is None else dict(zip(names, record, strict=True))


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

    def _get(self, operation: str, path: str, run_id: str) -> Any:
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        facts = {"run_id": run_id, "store": self.describe(), "operation": operation}
        where = f"pipeline store ({self.describe()}): {operation} for run {run_id!r}"
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
        return GateError(
            f"pipeline store ({self.describe()}) returned a malformed answer for run {run_id!r}: {detail}; "
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


def _text(row: Mapping[str, Any], name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"`{name}` must be a non-empty string")
    return value


def _time(row: Mapping[str, Any], name: str) -> datetime:
    value = row.get(name)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"`{name}` is not an ISO 8601 timestamp: {value!r}") from None
    if not isinstance(value, datetime):
        raise ValueError(f"`{name}` must be a timestamp")
    if value.tzinfo is None:
        # A time without an offset is ambiguous by hours; the age gate cannot judge it.
        raise ValueError(f"`{name}` has no UTC offset: {value.isoformat()}")
    return value


# --- for demos and tests: writes what the upstream agents would ----------------------------


def create_store_tables(dsn: str | Secret) -> None:
    """Load `schema/pipeline-store.sql` (idempotent). For demos and tests; production stores are provisioned."""
    conn = psycopg2.connect(dsn.reveal() if isinstance(dsn, Secret) else dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(STORE_DDL.read_text())
    finally:
        conn.close()


def seed_verdicts(
    dsn: str | Secret,
    run_id: str,
    digests: ArtifactDigests,
    *,
    status: str = "passed",
    verdict: str | None = "compliant",
    agent_id: str = "agent_005",
    validator_id: str = "agent_002",
    finished_at: datetime | None = None,
    decided_at: datetime | None = None,
    verdict_digests: ArtifactDigests | None = None,
    verdict_id: str | None = None,
) -> str | None:
    """For demos and tests: write what the upstream agents would, a validation run and its verdict.

    Creates the tables if needed, inserts (or replaces) the run with `digests`, and, unless
    `verdict` is None, a verdict approving `verdict_digests` (default: the same digests).
    Returns the verdict id (None without a verdict).
    """
    now = datetime.now(UTC)
    create_store_tables(dsn)
    conn = psycopg2.connect(dsn.reveal() if isinstance(dsn, Secret) else dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO validation_runs (id, status, agent_id, artifact_digests, created_at, finished_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, "
                "agent_id = EXCLUDED.agent_id, artifact_digests = EXCLUDED.artifact_digests, "
                "created_at = EXCLUDED.created_at, finished_at = EXCLUDED.finished_at",
                (run_id, status, agent_id, json.dumps(digests.to_dict()), finished_at or now, finished_at or now),
            )
            if verdict is None:
                return None
            verdict_id = verdict_id or str(uuid.uuid4())
            cur.execute(
                "INSERT INTO compliance_verdicts "
                "(id, validation_run_id, validator_id, verdict, artifact_digests, decided_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    verdict_id,
                    run_id,
                    validator_id,
                    verdict,
                    json.dumps((verdict_digests or digests).to_dict()),
                    decided_at or now,
                ),
            )
        return verdict_id
    finally:
        conn.close()
