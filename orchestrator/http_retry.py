"""Retrying one HTTP call: bounded attempts and time, capped backoff, Retry-After, look before resending.

Every HTTP client here (the DigitalOcean and Kubernetes adapters, GitHub, the team webhook and
pager, agentbench) runs its calls through `call_with_retries`. The clients differ in what counts
as transient and in how they word a failure, not in how they wait:

- An attempt raises `TransientError` for a failure a later attempt may not hit (429, 5xx, no
  answer); anything else leaves the loop at once.
- The wait is what the server asked for (`Retry-After`, as seconds or an HTTP-date) or else
  exponential backoff from `initial_wait`, capped at `max_wait`, plus up to `jitter` seconds.
- No wait starts that would end past the budget (`budget_seconds` after the first attempt, or
  the caller's own `deadline`), and there are at most `retries` more attempts after the first.
  When either runs out, the client's `on_exhausted` turns the last failure into its own error.
- A call that creates something passes `look`: after an ambiguous failure (the server may have
  acted before failing) the effect is looked for before the request is sent again, and once
  more before giving up, so a retry never creates a second one.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type

from orchestrator.redaction import redact

__all__ = ["RetryPolicy", "TransientError", "call_with_retries", "rate_limited", "retry_after_seconds"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How hard one call tries. Clients subclass it with defaults suited to their peer, so a caller
    that overrides one field keeps that client's other defaults."""

    retries: int | None = 3
    """More attempts after the first; None: as many as the budget allows."""
    initial_wait: float = 0.5
    max_wait: float = 8.0
    jitter: float = 0.0
    """Up to this many seconds added to each backoff, so many clients do not retry in step."""
    budget_seconds: float | None = None
    """No wait runs, and so no retry starts, past this many seconds after the first attempt."""
    max_retry_after: float | None = None
    """A 429 asking for a longer wait than this fails at once (see `rate_limited`)."""

    def backoff(self, retry_number: int) -> float:
        """The wait before retry `retry_number` (1 for the first) when the server named none."""
        wait = min(self.max_wait, self.initial_wait * 2.0 ** (retry_number - 1))
        return wait + (random.uniform(0.0, self.jitter) if self.jitter > 0 else 0.0)


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
    on_exhausted: Callable[[TransientError, int], Exception],
    look: Callable[[TransientError], T | None] | None = None,
    deadline: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """`attempt()`'s result, retrying it while it raises TransientError, within `policy`.

    `deadline` (a `clock()` value, `time.monotonic` unless given) bounds the waits beside `policy.budget_seconds`.
    With `look`, an ambiguous failure is followed by `look(that failure)` before the next send and
    before giving up; a result other than None is the call's result. Raises what `attempt` or
    `look` raise other than TransientError at once, and `on_exhausted(last failure, attempts)`
    (chained to it) when the retries or the time run out.
    """
    started = clock()
    ends = min(
        deadline if deadline is not None else math.inf,
        started + policy.budget_seconds if policy.budget_seconds is not None else math.inf,
    )
    resend = _LookBeforeResend(operation, attempt, look)

    def wait(state: RetryCallState) -> float:
        error = _failure(state)
        if error is not None and error.retry_after is not None:
            return error.retry_after
        return policy.backoff(state.attempt_number)

    def stop(state: RetryCallState) -> bool:
        if policy.retries is not None and state.attempt_number > policy.retries:
            return True
        return clock() + (state.upcoming_sleep or 0.0) > ends

    def before_sleep(state: RetryCallState) -> None:
        of = f" of {policy.retries}" if policy.retries is not None else ""
        log.info(
            "%s: %s; retry %d%s in %.1f s",
            operation,
            redact(str(_failure(state) or "failed")),
            state.attempt_number,
            of,
            state.upcoming_sleep,
        )

    retrying = Retrying(
        stop=stop,
        wait=wait,
        retry=retry_if_exception_type(TransientError),
        sleep=sleep,
        reraise=True,
        before_sleep=before_sleep,
    )
    try:
        return retrying(resend)
    except TransientError as exc:
        attempts = int(retrying.statistics.get("attempt_number", 1))
        found = resend.last_look()
        if found is not None:
            return found
        raise on_exhausted(exc, attempts) from exc


def rate_limited(headers: Any, policy: RetryPolicy, detail: str, *, too_long: Callable[[str], Exception]) -> Exception:
    """What a 429 becomes: a TransientError that waits as Retry-After asks or, when it asks for
    longer than `policy.max_retry_after`, `too_long(why)` to fail at once instead of stalling the run."""
    retry_after = retry_after_seconds(headers)
    cap = policy.max_retry_after
    if retry_after is not None and cap is not None and retry_after > cap:
        return too_long(f"it asks to wait {retry_after:.0f} s, more than the {cap:.0f} s we wait; run again later")
    return TransientError(detail, retry_after=retry_after)


def retry_after_seconds(headers: Mapping[str, Any] | Any, *, now: datetime | None = None) -> float | None:
    """The `Retry-After` header as seconds from `now`: delta-seconds (fractions too, as some servers
    send them) or an HTTP-date; 0 for a past date or a negative number; None when absent or unreadable."""
    if headers is None:
        return None
    value = headers.get("Retry-After")
    if value is None:
        value = headers.get("retry-after")
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, now or datetime.now(UTC))
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _failure(state: RetryCallState) -> TransientError | None:
    error = state.outcome.exception() if state.outcome else None
    return error if isinstance(error, TransientError) else None


def _seconds_until(http_date: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # An HTTP-date is always GMT; the obsolete forms carry no zone.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class _LookBeforeResend(Generic[T]):
    """The attempt `call_with_retries` repeats: after an ambiguous failure it looks for the
    effect before sending again, so a create that went through is never sent twice."""

    def __init__(
        self, operation: str, send: Callable[[], T], look: Callable[[TransientError], T | None] | None
    ) -> None:
        self._operation = operation
        self._send = send
        self._look = look
        self._ambiguous: TransientError | None = None
        self._last_was_ambiguous = False

    def __call__(self) -> T:
        found = self._looked(then="sending it again")
        if found is not None:
            return found
        try:
            return self._send()
        except TransientError as exc:
            self._last_was_ambiguous = exc.ambiguous
            if exc.ambiguous:
                self._ambiguous = exc
            raise

    def last_look(self) -> T | None:
        """One more look when giving up after an ambiguous attempt: it may have gone through."""
        if not self._last_was_ambiguous:
            return None
        try:
            return self._looked(then="giving up")
        except TransientError:
            return None

    def _looked(self, *, then: str) -> T | None:
        failure = self._ambiguous
        if failure is None or self._look is None:
            return None
        found = self._look(failure)
        if found is not None:
            log.warning("%s: the earlier attempt (%s) had gone through; not sending it again", self._operation, failure)
            return found
        log.info("%s: the earlier attempt (%s) had not gone through; %s", self._operation, failure, then)
        return None
