"""The one retry loop: its waits, its budgets, its Retry-After parser and looking before resending."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from orchestrator.http_retry import RetryPolicy, TransientError, call_with_retries, rate_limited, retry_after_seconds

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
POLICY = RetryPolicy(initial_wait=0.1, max_wait=0.3, max_retry_after=60.0)


class GaveUp(Exception):
    def __init__(self, last: TransientError, attempts: int) -> None:
        super().__init__(f"{last.detail} after {attempts} attempts")
        self.attempts = attempts


class Script:
    """An attempt that plays back outcomes in order: an exception is raised, anything else returned."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def run(attempt: Script, policy: RetryPolicy = POLICY, **options: object) -> tuple[object, list[float]]:
    slept: list[float] = []
    result = call_with_retries(
        "test call",
        attempt,
        policy,
        on_exhausted=GaveUp,
        sleep=slept.append,
        **options,  # type: ignore[arg-type]
    )
    return result, slept


# --- Retry-After ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0.25", 0.25),
        ("-3", 0.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        ("Tue, 01 Dec 2026 12:01:00 GMT", 60.0),
        ("Tuesday, 01-Dec-26 12:00:10 GMT", 10.0),
        ("Tue Dec  1 12:00:05 2026", 5.0),
        (format_datetime(NOW - timedelta(minutes=5), usegmt=True), 0.0),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str, seconds: float | None) -> None:
    assert retry_after_seconds({"Retry-After": value}, now=NOW) == seconds


def test_retry_after_is_none_without_the_header_and_found_in_any_case() -> None:
    assert retry_after_seconds({}) is None
    assert retry_after_seconds(None) is None
    assert retry_after_seconds({"retry-after": "4"}) == 4.0


def test_a_rate_limit_within_the_cap_waits_and_one_beyond_it_fails_at_once() -> None:
    waits = rate_limited({"Retry-After": "5"}, POLICY, "HTTP 429", too_long=RuntimeError)
    assert isinstance(waits, TransientError) and waits.retry_after == 5.0
    refused = rate_limited({"Retry-After": "3600"}, POLICY, "HTTP 429", too_long=RuntimeError)
    assert isinstance(refused, RuntimeError)
    assert str(refused) == "it asks to wait 3600 s, more than the 60 s we wait; run again later"
    uncapped = RetryPolicy(initial_wait=0.1, max_wait=0.3)
    assert isinstance(
        rate_limited({"Retry-After": "3600"}, uncapped, "HTTP 429", too_long=RuntimeError), TransientError
    )


# --- the loop -------------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_then_gives_up_after_the_retries() -> None:
    attempt = Script(*(TransientError(f"HTTP 50{n}") for n in range(4)))
    with pytest.raises(GaveUp, match=r"^HTTP 503 after 4 attempts$") as caught:
        run(attempt)
    assert attempt.calls == 4
    assert isinstance(caught.value.__cause__, TransientError)


def test_the_waits_are_exact_and_retry_after_replaces_the_backoff() -> None:
    attempt = Script(TransientError("502"), TransientError("429", retry_after=2.5), TransientError("503"), "ok")
    assert run(attempt) == ("ok", [0.1, 2.5, 0.3])


def test_a_failure_that_is_not_transient_leaves_at_once() -> None:
    attempt = Script(TransientError("503"), ValueError("401 token refused"))
    with pytest.raises(ValueError, match="token refused"):
        run(attempt)
    assert attempt.calls == 2


def test_jitter_adds_at_most_its_amount() -> None:
    policy = RetryPolicy(initial_wait=0.1, max_wait=1.0, jitter=0.05)
    _, slept = run(Script(TransientError("a"), TransientError("b"), "ok"), policy)
    assert 0.1 <= slept[0] <= 0.15 and 0.2 <= slept[1] <= 0.25


def test_no_wait_starts_that_would_end_past_the_budget() -> None:
    policy = RetryPolicy(retries=None, initial_wait=0.1, max_wait=0.1, budget_seconds=5.0)
    attempt = Script(TransientError("503"), TransientError("429", retry_after=10.0))
    with pytest.raises(GaveUp, match="after 2 attempts"):
        run(attempt, policy)
    assert attempt.calls == 2


def test_the_callers_deadline_bounds_the_waits_too() -> None:
    attempt = Script(TransientError("503"), "never reached")
    with pytest.raises(GaveUp, match="after 1 attempts"):
        run(attempt, RetryPolicy(retries=None, initial_wait=1.0, max_wait=1.0), deadline=time.monotonic() + 0.5)


def test_unbounded_retries_run_until_the_budget() -> None:
    policy = RetryPolicy(retries=None, initial_wait=0.01, max_wait=0.01, budget_seconds=0.3)
    attempt = Script(*(TransientError("503") for _ in range(10_000)))
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(GaveUp):
        call_with_retries("test call", attempt, policy, on_exhausted=GaveUp, sleep=sleep, clock=lambda: now[0])
    assert attempt.calls == 30, "0.3 s of budget in waits of 0.01 s: 29 waits, 30 attempts"


# --- look before resending ------------------------------------------------------------------------


class Looks:
    def __init__(self, *found: object) -> None:
        self.found = list(found)
        self.seen: list[str] = []

    def __call__(self, failure: TransientError) -> object:
        self.seen.append(failure.detail)
        return self.found.pop(0)


def test_after_an_ambiguous_failure_it_looks_and_does_not_send_again_when_it_went_through() -> None:
    attempt = Script(TransientError("502 after creating", ambiguous=True), "must not be sent")
    look = Looks("created-7")
    assert run(attempt, look=look) == ("created-7", [0.1])
    assert attempt.calls == 1
    assert look.seen == ["502 after creating"]


def test_it_sends_again_when_the_look_finds_nothing_and_keeps_looking_after_a_plain_failure() -> None:
    attempt = Script(TransientError("reset", ambiguous=True), TransientError("refused", ambiguous=False), "created-9")
    look = Looks(None, None)
    assert run(attempt, look=look) == ("created-9", [0.1, 0.2])
    assert attempt.calls == 3
    assert look.seen == ["reset", "reset"]


def test_a_failure_that_cannot_have_acted_is_resent_without_looking() -> None:
    attempt = Script(TransientError("429", retry_after=0.0), "created")
    look = Looks()
    assert run(attempt, look=look) == ("created", [0.0])
    assert look.seen == []


def test_it_looks_once_more_before_giving_up_after_an_ambiguous_last_attempt() -> None:
    policy = RetryPolicy(retries=1, initial_wait=0.1, max_wait=0.1)
    attempt = Script(TransientError("500", ambiguous=True), TransientError("504", ambiguous=True))
    look = Looks(None, "created-late")
    assert run(attempt, policy, look=look) == ("created-late", [0.1])
    assert look.seen == ["500", "504"]


def test_it_gives_up_when_the_last_look_finds_nothing() -> None:
    policy = RetryPolicy(retries=1, initial_wait=0.1, max_wait=0.1)
    attempt = Script(TransientError("500", ambiguous=True), TransientError("504", ambiguous=True))
    with pytest.raises(GaveUp, match="504 after 2 attempts"):
        run(attempt, policy, look=Looks(None, None))


def test_a_look_that_fails_for_good_stops_the_call() -> None:
    def look(_failure: TransientError) -> object:
        raise LookupError("the list call was refused")

    with pytest.raises(LookupError):
        run(Script(TransientError("500", ambiguous=True), "must not be sent"), look=look)
