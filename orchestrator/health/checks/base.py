"""The shape every check shares: a named callable that makes one attempt within a timeout.

A check never retries and never sleeps: it answers once, as an `Attempt`. Whoever schedules
it (the health loop, the verification runner) times it, stamps it and turns it into the
output contract's `HealthProbe`. Keeping attempts pure of scheduling is what lets one
deadline govern twenty checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from orchestrator.contract import HealthProbe
from orchestrator.redaction import redact

__all__ = ["Attempt", "Check", "describe_error", "probe", "timed", "utc_now"]

DETAIL_BODY_CHARS = 200


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt saw. `status_code` is 0 when nothing answered (refused, timeout, no DB)."""

    passed: bool
    status_code: int
    detail: str
    conclusive: bool = False
    """A failure no retry can change (the DSN is missing or unparsable): the check ends at once."""


@dataclass(frozen=True, slots=True)
class Check:
    """One named check. `attempt(timeout_seconds)` must return within about that timeout and never raise."""

    name: str
    """Shown in failures: `endpoint 'checkout'`, `database`, ..."""
    endpoint: str
    """`HealthProbe.endpoint`: the URL path (or masked absolute URL) for the health check, else kind:name."""
    timeout_seconds: float
    attempt: Callable[[float], Attempt]


def utc_now() -> str:
    """ISO-8601 UTC with milliseconds and a Z, the timestamp form of the output contract."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def timed(check: Check, timeout_seconds: float) -> tuple[Attempt, HealthProbe]:
    """Run one attempt of `check`: what it saw, and its record. A check that raises is a failed attempt."""
    stamp = utc_now()
    started = time.monotonic()
    try:
        seen = check.attempt(timeout_seconds)
    except Exception as exc:  # a bug in one check must fail that check, not the whole verification
        seen = Attempt(False, 0, describe_error(exc))
    return seen, probe(check, seen, stamp, (time.monotonic() - started) * 1000.0)


def probe(check: Check, seen: Attempt, timestamp: str, elapsed_ms: float) -> HealthProbe:
    return HealthProbe(
        endpoint=check.endpoint,
        status_code=seen.status_code,
        response_time_ms=round(max(elapsed_ms, 0.0), 3),
        passed=seen.passed,
        timestamp=timestamp,
        detail=redact(seen.detail),
    )


def describe_error(exc: BaseException) -> str:
    """`ClassName: message`, redacted and cut, for a probe's detail."""
    text = f"{type(exc).__name__}: {exc}".strip()
    return redact(text[: DETAIL_BODY_CHARS * 2])
