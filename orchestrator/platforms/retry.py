"""Retrying one platform API call: bounded attempts, capped exponential backoff, Retry-After.

Shared by the DigitalOcean and Kubernetes adapters, which differ in what counts as transient and
in how they word a failure, not in how they wait. An adapter's attempt raises `TransientError` for
a failure a later attempt may not hit; anything else leaves the loop at once. When the retries run
out, the adapter's `on_exhausted` turns the last transient failure into its own error.

Each adapter subclasses `RetryPolicy` with defaults suited to its API, so a caller that overrides
one field keeps that adapter's other defaults.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

__all__ = ["RetryPolicy", "TransientError", "call_with_retries", "judge_rate_limit", "retry_after_seconds"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How hard one API call tries: `retries` more attempts after the first, waits doubling from
    `initial_wait` up to `max_wait`, unless the server says how long to wait (Retry-After)."""

    retries: int = 3
    initial_wait: float
    max_wait: float
    max_retry_after: float
    """A 429 asking for a longer wait than this fails at once instead of stalling the run."""
    connect_timeout: float = 10.0
    read_timeout: float


class TransientError(Exception):
    """One attempt failed in a way a later attempt may not (raised inside the retry loop only)."""

    def __init__(self, detail: str, *, ambiguous: bool = False, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.ambiguous = ambiguous
        """The server may have acted on the request before failing."""
        self.retry_after = retry_after
        """Seconds the server asked us to wait (Retry-After); None to back off as usual."""


def call_with_retries(
    operation: str,
    attempt: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None],
    on_exhausted: Callable[[TransientError], Exception],
) -> T:
    """`attempt()`'s result, retrying it while it raises TransientError, at most `policy.retries` times.

    Raises what `attempt` raises other than TransientError at once, and `on_exhausted(last)`
    (chained to it) when the last attempt failed transiently too.
    """

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientError) and error.retry_after is not None:
            return error.retry_after
        backoff: float = policy.initial_wait * 2 ** (state.attempt_number - 1)
        return min(policy.max_wait, backoff)

    retrying = Retrying(
        stop=stop_after_attempt(policy.retries + 1),
        wait=wait,
        retry=retry_if_exception_type(TransientError),
        sleep=sleep,
        reraise=True,
        before_sleep=lambda state: log.info(
            "%s: %s; retry %d of %d", operation, _outcome(state), state.attempt_number, policy.retries
        ),
    )
    try:
        return retrying(attempt)
    except TransientError as exc:
        raise on_exhausted(exc) from exc


def judge_rate_limit(
    headers: Any, policy: RetryPolicy, detail: str, *, too_long: Callable[[str], Exception]
) -> Exception:
    """What a 429 becomes: a TransientError that waits as Retry-After asks or, when it asks for
    longer than `policy.max_retry_after`, `too_long(why)` to fail at once instead of stalling the run."""
    retry_after = retry_after_seconds(headers)
    if retry_after is not None and retry_after > policy.max_retry_after:
        return too_long(
            f"it asks to wait {retry_after:.0f} s, more than the {policy.max_retry_after:.0f} s we wait; "
            "run again later"
        )
    return TransientError(detail, retry_after=retry_after)


def retry_after_seconds(headers: Any) -> float | None:
    """A `Retry-After: <seconds>` header as seconds (a negative one as 0); None when absent or not a number."""
    value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _outcome(state: RetryCallState) -> str:
    error = state.outcome.exception() if state.outcome else None
    return str(error) if error else "failed"
