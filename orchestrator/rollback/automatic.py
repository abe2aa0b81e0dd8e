"""The automatic rollback, which undoes a failed rollout: traffic back, this run's migrations
undone, the old release re-checked.

Order matters: traffic goes back first (users first), then the schema, because the old release
already ran against the new schema during the switch; the old release is checked last, through
the public route, and the platform is told to keep (or revert) its rollback. Any failure here is
a `RollbackError`, and the caller pages on-call.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchestrator.contract import HealthProbe, MigrationResult, RollbackOutcome
from orchestrator.errors import MigrationError, OrchestratorError, RollbackError
from orchestrator.health.verdict import Checks
from orchestrator.platforms.base import NativeRollback, Platform, Release, Retirement, answers_on_a_url
from orchestrator.recovery import crash_points
from orchestrator.runlog import RunLog

__all__ = ["RollbackReport", "roll_back", "start_rollback"]


@dataclass(frozen=True, slots=True)
class RollbackReport:
    outcome: RollbackOutcome
    probes: tuple[HealthProbe, ...]
    undone: tuple[MigrationResult, ...]
    error: RollbackError | None = None


def roll_back(
    *,
    platform: Platform,
    previous: Release | None,
    failed_version: str,
    traffic_moved: bool,
    reason: str,
    checks: Checks,
    undo_migrations: Callable[[], Sequence[MigrationResult]],
    budget_seconds: float,
    log: RunLog,
) -> RollbackReport:
    """Never raises: a failed rollback (or one over `budget_seconds`) comes back as `error`, so the
    caller can page and record it."""
    began = time.monotonic()
    log.warn(f"rolling back {failed_version}: {reason}")
    probes: tuple[HealthProbe, ...] = ()
    undone: tuple[MigrationResult, ...] = ()
    error: RollbackError | None = None
    try:
        if previous is None and traffic_moved:
            raise RollbackError(
                f"there is no earlier release to return to, so {failed_version} stays live; "
                "fix forward, or stop it with `deploy-orchestrator local stop` / the platform's console"
            )
        if previous is not None and traffic_moved:
            start_rollback(platform, previous, log)
            log.info(f"traffic back on {previous.version}")
            crash_points.reach("during-rollback")
        try:
            undone = tuple(undo_migrations())
        except MigrationError as exc:
            undone = tuple(exc.results)
            raise RollbackError(f"a migration could not be undone: {exc}") from exc
        if previous is not None and not answers_on_a_url(platform):
            # No URL to re-check (workers and jobs only): the rollback deployment went live and the
            # platform found its components healthy, which is what a check could have told.
            if isinstance(platform, NativeRollback):
                platform.confirm_rollback(True)
            log.info(f"previous release {previous.version} is live (no URL to check: workers and jobs only)")
        elif previous is not None:
            verdict = checks.release(platform.live_url(), analysis=False, deadline=began + budget_seconds)
            probes = verdict.probes
            if isinstance(platform, NativeRollback):
                platform.confirm_rollback(verdict.passed)
            if not verdict.passed:
                raise RollbackError(f"previous release {previous.version} is unhealthy too: {verdict.reason}")
            log.info(f"previous release {previous.version} is healthy")
        if isinstance(platform, Retirement):
            platform.stop(failed_version)
    except RollbackError as exc:
        error = exc
    except OrchestratorError as exc:
        error = RollbackError(f"rollback failed at {exc.step}: {exc}")
    except Exception as exc:  # a driver error or a bug must still end in a page, not a lost run
        log.error("unexpected error during the rollback:\n" + "".join(traceback.format_exception(exc)))
        error = RollbackError(f"rollback failed unexpectedly: {type(exc).__name__}: {exc}")
    duration = time.monotonic() - began
    if error is None and duration > budget_seconds:
        error = RollbackError(
            f"the rollback took {duration:.1f} s, over max_rollback_duration_seconds ({budget_seconds:g} s)"
        )
    if error is not None:
        log.error(f"ROLLBACK FAILED: {error}")
    outcome = RollbackOutcome(
        triggered=True,
        reason=reason,
        previous_version=previous.version if previous else None,
        duration_seconds=round(duration, 3),
        succeeded=error is None,
    )
    return RollbackReport(outcome=outcome, probes=probes, undone=undone, error=error)


def start_rollback(platform: Platform, previous: Release, log: RunLog) -> None:
    """`platform.rollback`, settled when it fails: a platform whose rollback is a transaction (App
    Platform pins the app to the rollback deployment) is told to revert it, so a rollback deployment
    that never went live cannot leave the app pinned and every later deploy refused. The original
    error is raised either way; a revert that fails too is added to it."""
    try:
        platform.rollback(previous)
    except OrchestratorError as exc:
        if not isinstance(platform, NativeRollback):
            raise
        try:
            platform.confirm_rollback(False)
        except OrchestratorError as revert:
            log.error(f"reverting the failed rollback to {previous.version} failed too: {revert}")
            raise RollbackError(
                f"rollback failed at {exc.step}: {exc}; reverting it failed too ({revert}): the platform may "
                "still be pinned to the rollback, finish it in its console"
            ) from exc
        log.warn(f"the rollback to {previous.version} failed; the platform was told to undo it (nothing left pinned)")
        raise
