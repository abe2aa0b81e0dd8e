"""The verification runner: concurrency, one deadline, retries and consecutive_failures."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

import pytest

from orchestrator.contract import DatabaseCheck, HttpCheck, JobCheck, MetricCheck
from orchestrator.errors import HealthError
from orchestrator.health.checks.base import Attempt, Check
from orchestrator.health.verification import decide, run_checks, verify
from orchestrator.redaction import Secret
from tests.health.helpers import HEALTH, healthy, vconfig
from tests.health.slow_app import SlowApp
from tests.peers.http import HttpPeer, Reply, Seen


def sequence(*statuses: int) -> Callable[[Seen], Reply]:
    """A handler answering the given statuses in order, then repeating the last one."""
    remaining = list(statuses)
    lock = threading.Lock()

    def handler(_seen: Seen) -> Reply:
        with lock:
            status = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return Reply(status, f"answer {status}")

    return handler


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- the decision, as data ----------------------------------------------------------------------

P, F = True, False


@pytest.mark.parametrize(
    ("outcomes", "retries", "consecutive", "expected"),
    [
        ([P], 1, 1, "passed"),
        ([F], 1, 1, "failed"),
        ([F], 1, 3, None),
        ([F, F, P], 1, 3, "passed"),
        ([F, F, F], 1, 3, "failed"),
        ([P], 3, 1, None),
        ([P, P, P], 3, 1, "passed"),
        ([P, F], 3, 1, "failed"),
        ([P, F], 4, 2, None),
        ([P, F, P, P], 4, 2, "passed"),
        ([P, F, F], 4, 2, "failed"),
        ([P, P, P, F], 4, 2, None),
        ([P, P, P, F, P], 4, 2, "passed"),
        ([], 1, 1, None),
    ],
)
def test_decide(outcomes: list[bool], retries: int, consecutive: int, expected: str | None) -> None:
    assert decide(outcomes, retries, consecutive) == expected


# --- retries and consecutive_failures against a real peer ----------------------------------------


@pytest.mark.parametrize(
    ("statuses", "retries", "consecutive", "passed", "attempts"),
    [
        ((500, 500, 200), 1, 3, True, 3),  # a flaky check retried until it passes
        ((500, 500, 500, 200), 1, 3, False, 3),  # three failures in a row: failed, no fourth attempt
        ((200, 500, 200), 3, 1, False, 2),  # every observation must pass
        ((200, 500, 200, 200), 4, 2, True, 4),  # one blip forgiven
        ((200, 500, 500, 200), 4, 2, False, 3),  # two in a row are not
    ],
)
def test_retries_and_consecutive_failures(
    http_peer: HttpPeer, statuses: tuple[int, ...], retries: int, consecutive: int, passed: bool, attempts: int
) -> None:
    healthy(http_peer).route("GET", "/api", sequence(*statuses))
    config = vconfig(
        critical_endpoints=(HttpCheck(name="api", path="/api"),),
        retries=retries,
        consecutive_failures=consecutive,
        interval_seconds=0.02,
    )

    verdict = verify(http_peer.url, HEALTH, config, dsn=None)

    assert verdict.passed is passed
    probes = [p for p in verdict.probes if p.endpoint == "endpoint:api"]
    assert [p.status_code for p in probes] == list(statuses[:attempts])
    assert len(http_peer.requests_to("/api")) == attempts
    if not passed:
        assert f"endpoint 'api': failed {consecutive} attempts in a row (of {attempts}): " in verdict.failures[-1]
        assert verdict.failures[-1].endswith("expected 200, got 500 Internal Server Error: answer 500")


def test_interval_separates_attempts(http_peer: HttpPeer) -> None:
    healthy(http_peer).route("GET", "/api", Reply(200))
    config = vconfig(critical_endpoints=(HttpCheck(name="api", path="/api"),), retries=3, interval_seconds=0.1)

    verdict = verify(http_peer.url, HEALTH, config, dsn=None)

    probes = [p for p in verdict.probes if p.endpoint == "endpoint:api"]
    gaps = [stamp(b.timestamp) - stamp(a.timestamp) for a, b in itertools.pairwise(probes)]
    assert len(probes) == 3 and all(gap >= 0.1 for gap in gaps), gaps
    assert verdict.wall_seconds >= 0.2


# --- one deadline --------------------------------------------------------------------------------

DEADLINE = 3.0
"""Long enough for a quick check to answer on a loaded machine: only the held ones meet the deadline."""


def hold(release: threading.Event, arrivals: list[float]) -> Callable[[Seen], Reply]:
    """A handler that notes when each request arrives and never answers: once `release` is set it hangs up."""

    def handler(_seen: Seen) -> Reply:
        arrivals.append(time.monotonic())
        release.wait(60)
        return Reply(close=True)

    return handler


def test_a_hanging_check_is_cut_by_the_deadline_and_the_call_returns(http_peer: HttpPeer, silent_port: int) -> None:
    release, arrivals = threading.Event(), []
    healthy(http_peer).route("GET", "/hang", hold(release, arrivals))
    http_peer.route("GET", "/fine", Reply(200))
    config = vconfig(
        deadline_seconds=DEADLINE,
        critical_endpoints=(
            HttpCheck(name="hang", path="/hang", timeout_seconds=30),
            HttpCheck(name="fine", path="/fine"),
        ),
        database=DatabaseCheck(timeout_seconds=30),
    )
    dsn = Secret(f"postgresql://app:pw-silent-9a7e@127.0.0.1:{silent_port}/app")

    started = time.monotonic()
    try:
        verdict = verify(http_peer.url, HEALTH, config, dsn=dsn)
    finally:
        release.set()

    assert verdict.wall_seconds >= DEADLINE, "not before the deadline"
    assert not verdict.passed
    assert verdict.failures == (
        "database: no answer within the deadline (3 s)",
        "endpoint 'hang': no answer within the deadline (3 s)",
    )
    cut = next(p for p in verdict.probes if p.endpoint == "endpoint:hang")
    assert (cut.status_code, cut.passed) == (0, False)
    # In flight from (at the latest) its arrival at the peer until the cut, at the deadline or after.
    (arrived,) = arrivals
    assert cut.response_time_ms >= (started + DEADLINE - arrived) * 1000.0 - 1.0
    assert next(p for p in verdict.probes if p.endpoint == "endpoint:fine").passed


def test_the_call_returns_at_the_deadline_while_a_hung_attempt_is_still_running() -> None:
    """The check ignores its timeout: only the deadline can end the call, and it does not wait for the attempt."""
    release, returned = threading.Event(), threading.Event()

    def hung(_timeout: float) -> Attempt:
        release.wait(60)
        returned.set()
        return Attempt(True, 200, "too late")

    def fine(_timeout: float) -> Attempt:
        return Attempt(True, 200, "ok")

    checks = (Check("hung", "custom:hung", 30.0, hung), Check("fine", "custom:fine", 30.0, fine))
    try:
        verdict = run_checks(checks, vconfig(deadline_seconds=DEADLINE))
        still_running = not returned.is_set()
    finally:
        release.set()

    assert still_running, "the call waited for the hung attempt"
    assert verdict.failures == ("hung: no answer within the deadline (3 s)",)
    assert [p.passed for p in verdict.probes] == [False, True]
    assert verdict.wall_seconds >= DEADLINE
    assert returned.wait(10)


def test_an_attempt_that_ends_after_the_deadline_is_cut_whoever_notices_first() -> None:
    """An answer that comes after the deadline fails the check, even when it lands before the caller's cut."""
    config = vconfig(deadline_seconds=2.0)
    past_deadline = time.monotonic() + config.deadline_seconds + 0.5  # surely after the runner's own deadline

    def late(_timeout: float) -> Attempt:
        while time.monotonic() < past_deadline:
            threading.Event().wait(past_deadline - time.monotonic())
        return Attempt(True, 200, "ok, but late")

    verdict = run_checks((Check("late", "custom:late", 30.0, late),), config)

    assert verdict.failures == ("late: no answer within the deadline (2 s)",)
    assert [(p.status_code, p.passed) for p in verdict.probes] == [(0, False)]


def test_each_check_keeps_its_own_timeout_within_the_deadline(http_peer: HttpPeer) -> None:
    release, arrivals = threading.Event(), []
    healthy(http_peer).route("GET", "/slow", hold(release, arrivals))
    config = vconfig(
        deadline_seconds=60, critical_endpoints=(HttpCheck(name="slow", path="/slow", timeout_seconds=0.2),)
    )

    try:
        verdict = verify(http_peer.url, HEALTH, config, dsn=None)
    finally:
        release.set()

    # The check's own 0.2 s timeout ended it, not the 60 s deadline (that would say "within the deadline").
    host = http_peer.url.removeprefix("http://")
    assert verdict.failures == (
        f"endpoint 'slow': failed: no answer from {http_peer.url}/slow: ReadTimeout: "
        f"HTTPConnectionPool(host='127.0.0.1', port={host.split(':')[1]}): Read timed out. (read timeout=0.2)",
    )
    assert len(arrivals) == 1


def test_twenty_checks_are_in_flight_at_once() -> None:
    """The app answers only once all twenty requests wait on it together: run one at a time, none would pass."""
    app = SlowApp(delay=0.0, together=20)
    try:
        config = vconfig(
            deadline_seconds=60,
            critical_endpoints=tuple(HttpCheck(name=f"e{i}", path=f"/endpoint/{i}") for i in range(9)),
            background_jobs=tuple(JobCheck(name=f"j{i}", path=f"/job/{i}", max_age_seconds=60) for i in range(5)),
            metrics=(
                *(MetricCheck(name=f"q{i}", prometheus_url=app.url, query="up") for i in range(3)),
                *(MetricCheck(name=f"s{i}", scrape_path="/metrics", series="app_up") for i in range(2)),
            ),
        )

        verdict = verify(app.url, HEALTH, config, dsn=None)
    finally:
        app.close()

    assert verdict.passed, verdict.failures
    assert len(verdict.probes) == 20 and app.requests == 20
    assert [p.endpoint for p in verdict.probes][:3] == ["/health", "endpoint:e0", "endpoint:e1"]


def test_deadline_between_attempts_passes_a_check_whose_last_attempt_passed(
    http_peer: HttpPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """The next attempt would start past the deadline: the check stops there, on its passing attempt."""
    healthy(http_peer).route("GET", "/api", Reply(200))
    config = vconfig(
        deadline_seconds=5,
        retries=100,
        interval_seconds=10,
        critical_endpoints=(HttpCheck(name="api", path="/api"),),
    )

    with caplog.at_level(logging.WARNING, logger="orchestrator.health.verification"):
        verdict = verify(http_peer.url, HEALTH, config, dsn=None)

    assert verdict.passed, verdict.failures
    assert len([p for p in verdict.probes if p.endpoint == "endpoint:api"]) == 1
    assert "verification: endpoint 'api' made 1 of 100 attempts before the deadline; counted as passed" in caplog.text


def test_deadline_between_attempts_fails_a_check_still_failing(http_peer: HttpPeer) -> None:
    healthy(http_peer).route("GET", "/api", Reply(503, "starting"))
    config = vconfig(
        deadline_seconds=5,
        consecutive_failures=100,
        interval_seconds=10,
        critical_endpoints=(HttpCheck(name="api", path="/api"),),
    )

    verdict = verify(http_peer.url, HEALTH, config, dsn=None)

    assert verdict.failures == (
        "endpoint 'api': still failing at the deadline (1 attempts): "
        "GET /api: expected 200, got 503 Service Unavailable: starting",
    )


def test_a_check_that_raises_is_a_failed_attempt_not_a_crash() -> None:
    def broken(_timeout: float) -> Attempt:
        raise KeyError("no such field")

    def fine(_timeout: float) -> Attempt:
        return Attempt(True, 200, "ok")

    checks = (Check("broken", "custom:broken", 1.0, broken), Check("fine", "custom:fine", 1.0, fine))

    verdict = run_checks(checks, vconfig())

    assert verdict.failures == ("broken: failed: KeyError: 'no such field'",)
    assert [p.passed for p in verdict.probes] == [False, True]


def test_raise_if_failed(http_peer: HttpPeer) -> None:
    http_peer.route("GET", "/health", Reply(500))

    verdict = verify(http_peer.url, HEALTH, vconfig(), dsn=None)

    with pytest.raises(HealthError) as raised:
        verdict.raise_if_failed()
    assert str(raised.value) == (
        "verification failed: health: failed: expected 200, got 500 Internal Server Error (empty body)"
    )
    assert raised.value.check is not None and raised.value.check.startswith("health: ")
