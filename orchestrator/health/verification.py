"""Post-deployment verification: the seed's five checks, run concurrently under one deadline.

Decide, then do: `plan_checks` turns the config into a tuple of `Check`s (pure), `verify`
runs them, each in its own daemon thread, and returns at the latest at the deadline.

The same call serves as pre-switch analysis: pass the new release's direct URL instead of the
live URL. Only the health check, the critical endpoints, HTTP job checks given as a `path`
and metric scrapes follow that base URL; the database, SQL jobs, job checks given as an
absolute `url` and Prometheus queries read shared systems, so before the switch they describe
production as it is, not the new release.

Attempts, retries and `consecutive_failures` (per check, all within the deadline):

- attempts are `interval_seconds` apart (from the end of one to the start of the next);
- a check FAILS as soon as `consecutive_failures` attempts in a row have failed;
- a check PASSES once it has made at least `retries` attempts and its latest attempt passed;
- so `retries` is how many observations a check needs, and `consecutive_failures` how many
  failures in a row it forgives minus one. A failure run shorter than `consecutive_failures`
  is retried even past `retries` attempts until it passes or reaches the limit.
  Examples, P = pass, F = fail:
    retries=1, consecutive_failures=1: P -> pass; F -> fail (the default: one attempt)
    retries=1, consecutive_failures=3: F F P -> pass; F F F -> fail (retry a flaky check)
    retries=3, consecutive_failures=1: P P P -> pass; P F -> fail (every observation must pass)
    retries=4, consecutive_failures=2: P F P P -> pass (one blip forgiven); P F F -> fail
  Raising `retries` alone makes a check stricter; to forgive blips, raise `consecutive_failures`.
- a failure no retry can change (no DSN configured, DSN unparsable) fails the check at once;
- at the deadline, a check with an attempt still in flight fails ("no answer within the
  deadline") and the call returns without waiting for it; an attempt that ends after the
  deadline counts as in flight at it, whether the caller's cut or the attempt's end is noticed
  first, so a loaded machine does not change the verdict; a check between attempts whose latest
  attempt passed passes (it ran out of time to make all its observations, which is logged);
  one whose latest attempt failed fails.

Every attempt becomes a `HealthProbe`; a cut attempt is recorded with status 0.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from orchestrator.contract import HealthCheckConfig, HealthProbe, VerificationConfig
from orchestrator.errors import HealthError
from orchestrator.health.checks.base import Check, describe_error, timed, utc_now
from orchestrator.health.checks.database import database_check
from orchestrator.health.checks.http import endpoint_check, health_check
from orchestrator.health.checks.jobs import job_check
from orchestrator.health.checks.metrics import metric_check
from orchestrator.progress import Reporter
from orchestrator.redaction import Secret, redact

__all__ = ["VerificationVerdict", "decide", "plan_checks", "verify"]

log = logging.getLogger(__name__)

Decision = Literal["passed", "failed"] | None

_CUT_GRACE_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class VerificationVerdict:
    passed: bool
    probes: tuple[HealthProbe, ...]
    """Every attempt of every check, grouped by check in plan order, attempts in order."""
    failures: tuple[str, ...]
    """One line per failed check: its name, how it failed, what was expected and what came back."""
    wall_seconds: float

    def raise_if_failed(self) -> None:
        """Raises HealthError (step `health`, `check` = the first failed check's line) when not passed."""
        if not self.passed:
            raise HealthError(
                "verification failed: " + "; ".join(self.failures), check=self.failures[0] if self.failures else None
            )


def plan_checks(
    base_url: str,
    health: HealthCheckConfig,
    config: VerificationConfig,
    *,
    dsn: Secret | None,
    include_database: bool = True,
) -> tuple[Check, ...]:
    """The checks to run, in report order. `include_database=False` leaves out the database and SQL job checks."""
    checks = [health_check(base_url, health)]
    if config.database is not None and include_database:
        checks.append(database_check(dsn, config.database))
    checks.extend(endpoint_check(base_url, c) for c in config.critical_endpoints)
    checks.extend(job_check(base_url, dsn, j) for j in config.background_jobs if include_database or j.sql is None)
    checks.extend(metric_check(base_url, m) for m in config.metrics)
    return tuple(checks)


def decide(outcomes: Sequence[bool], retries: int, consecutive_failures: int) -> Decision:
    """The verdict of a check from its attempts so far (True = passed), or None to attempt again."""
    trailing = _trailing_failures(outcomes)
    if trailing >= max(consecutive_failures, 1):
        return "failed"
    if outcomes and trailing == 0 and len(outcomes) >= retries:
        return "passed"
    return None


def verify(
    live_url: str,
    health: HealthCheckConfig,
    config: VerificationConfig,
    *,
    dsn: Secret | None,
    include_database: bool = True,
) -> VerificationVerdict:
    """Run every configured check concurrently; return by `config.deadline_seconds` at the latest.

    Never raises for a failing check (that is the verdict); use `raise_if_failed()` for HealthError.
    """
    checks = plan_checks(live_url, health, config, dsn=dsn, include_database=include_database)
    return run_checks(checks, config)


def run_checks(checks: Sequence[Check], config: VerificationConfig) -> VerificationVerdict:
    """The executor behind `verify`, for any planned checks."""
    started = time.monotonic()
    deadline = started + config.deadline_seconds
    stop = threading.Event()
    done: queue.SimpleQueue[int] = queue.SimpleQueue()
    runs = [_CheckRun(check, config, deadline, stop) for check in checks]
    for index, run in enumerate(runs):
        # Daemon threads: a check hung past the deadline must not keep the process (or this call) alive.
        threading.Thread(target=run.run, args=(done, index), name=f"verify-{index}", daemon=True).start()
    pending = len(runs)
    progress = Reporter(f"{len(runs)} verification checks", config.deadline_seconds)
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        progress.tick(time.monotonic() - started)
        try:
            done.get(timeout=min(remaining, 1.0))  # wake up to say how the wait goes
        except queue.Empty:
            continue
        pending -= 1
    stop.set()
    for run in runs:
        run.cut()
    probes = tuple(p for run in runs for p in run.probes)
    failures = tuple(f"{run.check.name}: {run.reason}" for run in runs if run.decision != "passed")
    wall = time.monotonic() - started
    for failure in failures:
        log.warning("verification: %s", failure)
    log.info("verification: %d of %d checks passed in %.2f s", len(runs) - len(failures), len(runs), wall)
    return VerificationVerdict(passed=not failures, probes=probes, failures=failures, wall_seconds=wall)


class _CheckRun:
    """One check's attempts in its own thread.

    The verdict (`decision`, `reason`) is written once, under `_lock`, by whichever comes first:
    the worker deciding, or the caller's `cut()` at the deadline.
    """

    def __init__(self, check: Check, config: VerificationConfig, deadline: float, stop: threading.Event) -> None:
        self.check = check
        self._config = config
        self._deadline = deadline
        self._stop = stop
        self._lock = threading.Lock()
        self._probes: list[HealthProbe] = []
        self._outcomes: list[bool] = []
        self._in_flight: tuple[str, float] | None = None
        self.decision: Decision = None
        self.reason = ""

    @property
    def probes(self) -> tuple[HealthProbe, ...]:
        with self._lock:
            return tuple(self._probes)

    def run(self, done: queue.SimpleQueue[int], index: int) -> None:
        try:
            self._attempt_until_decided()
        except Exception as exc:  # the scheduler itself must never lose a check's verdict
            with self._lock:
                self._settle("failed", f"internal error: {describe_error(exc)}")
        finally:
            done.put(index)

    def _attempt_until_decided(self) -> None:
        config = self._config
        while not self._stop.is_set():
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                break
            with self._lock:
                self._in_flight = (utc_now(), time.monotonic())
            # The deadline, not the attempt's own timeout, must be what cuts a hang: a small grace
            # lets the caller's cut land first, so the report says "no answer within the deadline".
            seen, probe = timed(self.check, min(self.check.timeout_seconds, remaining + _CUT_GRACE_SECONDS))
            ended = time.monotonic()
            with self._lock:
                if self.decision is not None:  # cut by the deadline while this attempt ran
                    return
                if ended >= self._deadline:
                    # In flight at the deadline: the caller's cut was only late (a loaded machine), and
                    # the verdict must not depend on which thread noticed first.
                    self._cut_in_flight()
                    return
                self._in_flight = None
                self._probes.append(probe)
                self._outcomes.append(probe.passed)
                decision: Decision = "failed" if seen.conclusive and not seen.passed else None
                decision = decision or decide(self._outcomes, config.retries, config.consecutive_failures)
                if decision is not None:
                    self._settle(decision, self._explain(decision))
                    return
            if time.monotonic() + config.interval_seconds >= self._deadline:
                break
            if self._stop.wait(config.interval_seconds):
                break
        with self._lock:
            self._settle_at_deadline()

    def cut(self) -> None:
        """At the deadline: an attempt still running is recorded as failed and fails the check."""
        with self._lock:
            if self.decision is not None:
                return
            if self._in_flight is None:
                self._settle_at_deadline()
            else:
                self._cut_in_flight()

    # The helpers below run with `_lock` held.

    def _cut_in_flight(self) -> None:
        """The attempt in flight fails the check as cut by the deadline (a no-op when none is)."""
        if self._in_flight is None:
            return
        stamp, since = self._in_flight
        detail = f"no answer within the deadline ({self._config.deadline_seconds:g} s)"
        self._probes.append(
            HealthProbe(
                endpoint=self.check.endpoint,
                status_code=0,
                response_time_ms=round((time.monotonic() - since) * 1000.0, 3),
                passed=False,
                timestamp=stamp,
                detail=detail,
            )
        )
        self._outcomes.append(False)
        self._settle("failed", detail)

    def _explain(self, decision: Decision) -> str:
        attempts = len(self._probes)
        last = self._probes[-1].detail if self._probes else None
        if decision == "passed":
            return f"passed ({attempts} attempt{'s' if attempts != 1 else ''})"
        trailing = _trailing_failures(self._outcomes)
        if trailing == 1 and attempts == 1:
            return f"failed: {last}"
        return f"failed {trailing} attempts in a row (of {attempts}): {last}"

    def _settle_at_deadline(self) -> None:
        if self._outcomes and self._outcomes[-1]:
            log.warning(
                "verification: %s made %d of %d attempts before the deadline; counted as passed",
                self.check.name,
                len(self._outcomes),
                self._config.retries,
            )
            self._settle("passed", "passed (deadline reached before all attempts)")
        elif self._outcomes:
            last = self._probes[-1].detail
            self._settle("failed", f"still failing at the deadline ({len(self._outcomes)} attempts): {last}")
        else:
            self._settle("failed", "no attempt could start before the deadline")

    def _settle(self, decision: Decision, reason: str) -> None:
        if self.decision is None:
            self.decision = decision
            self.reason = redact(reason)


def _trailing_failures(outcomes: Sequence[bool]) -> int:
    count = 0
    for passed in reversed(outcomes):
        if passed:
            break
        count += 1
    return count
