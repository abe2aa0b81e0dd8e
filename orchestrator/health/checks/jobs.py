"""Background-job attempts: is the job's last run recent enough?

The age comes from an HTTP endpoint (JSON with `age_seconds`, or `last_run_at` in ISO 8601)
or from SQL returning one value: the age in seconds, or the last run's timestamp. For Odoo:
`SELECT extract(epoch from now() - max(lastcall)) FROM ir_cron WHERE active`.
A timestamp without a zone is taken as UTC (Odoo stores `lastcall` that way).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import requests

from orchestrator.contract import JobCheck
from orchestrator.health.checks.base import Attempt, Check
from orchestrator.health.checks.database import MISSING_DSN, DatabaseUnavailableError, query_one
from orchestrator.health.checks.http import json_of, request, resolve_url, unreachable
from orchestrator.redaction import Secret

__all__ = ["age_seconds", "job_check"]


def job_check(base_url: str, dsn: Secret | None, check: JobCheck) -> Check:
    """The job's last run must be at most `max_age_seconds` old."""

    def attempt(timeout_seconds: float) -> Attempt:
        if check.sql is not None:
            return _sql_attempt(dsn, check, check.sql, timeout_seconds)
        return _http_attempt(resolve_url(base_url, check.url or check.path or "/"), check, timeout_seconds)

    return Check(
        name=f"job '{check.name}'", endpoint=f"job:{check.name}", timeout_seconds=check.timeout_seconds, attempt=attempt
    )


def age_seconds(value: Any, now: datetime | None = None) -> float:
    """Seconds since the last run, from a number of seconds, a datetime or an ISO 8601 string.

    Raises ValueError saying what it got when the value is none of those (NULL means: never ran).
    """
    now = now or datetime.now(UTC)
    if value is None:
        raise ValueError("no run recorded (NULL)")
    if isinstance(value, bool):
        raise ValueError(f"expected an age in seconds or a timestamp, got {value!r}")
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"expected an age in seconds or an ISO 8601 timestamp, got {value[:80]!r}") from None
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (now - stamp).total_seconds()
    raise ValueError(f"expected an age in seconds or a timestamp, got {type(value).__name__}")


def _judge(check: JobCheck, value: Any, status: int) -> Attempt:
    try:
        age = age_seconds(value)
    except ValueError as exc:
        return Attempt(False, status, str(exc))
    if age > check.max_age_seconds:
        return Attempt(False, status, f"last run {age:.0f} s ago, over max_age_seconds {check.max_age_seconds:g}")
    return Attempt(True, status, f"last run {max(age, 0.0):.0f} s ago")


def _sql_attempt(dsn: Secret | None, check: JobCheck, sql: str, timeout_seconds: float) -> Attempt:
    if not dsn:
        return Attempt(False, 0, MISSING_DSN, conclusive=True)
    try:
        row = query_one(dsn, (sql,), timeout_seconds)
    except DatabaseUnavailableError as exc:
        return Attempt(False, 0, str(exc), conclusive=exc.conclusive)
    if not row.has_rows[0]:
        return Attempt(False, 0, f"query returned no rows: {sql}")
    return _judge(check, row.values[0], 0)


def _http_attempt(url: str, check: JobCheck, timeout_seconds: float) -> Attempt:
    try:
        answer = request("GET", url, timeout_seconds)
    except requests.RequestException as exc:
        return unreachable(url, exc)
    if not 200 <= answer.status < 300:
        return Attempt(False, answer.status, f"expected a 2xx JSON answer, got {answer.excerpt()}")
    try:
        body = json_of(answer)
    except ValueError as exc:
        return Attempt(False, answer.status, str(exc))
    if isinstance(body, dict):
        if "age_seconds" in body:
            return _judge(check, body["age_seconds"], answer.status)
        if "last_run_at" in body:
            return _judge(check, body["last_run_at"], answer.status)
    return Attempt(False, answer.status, f"expected JSON with last_run_at or age_seconds, got {answer.excerpt()}")
