"""Rollbacks: undo a failed rollout (`roll_back`), or return to a kept release on request
(`manual_rollback`, mode rollback): traffic back, migrations undone, the old release re-checked.

Order matters: traffic goes back first (users first), then the schema, because the old release
already ran against the new schema during the switch; the old release is checked last, through
the public route, and the platform is told to keep (or revert) its rollback. Any failure here is
a `RollbackError`, and the caller pages on-call.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol

from orchestrator.contract import HealthProbe, MigrationResult, RollbackOutcome
from orchestrator.errors import GateError, MigrationError, OrchestratorError, RollbackError
from orchestrator.health.verdict import Checks
from orchestrator.migrations.runner import MigrationRunner
from orchestrator.migrations.scripts import MigrationScript, version_key
from orchestrator.platforms.base import NativeRollback, Platform, Release, Retirement
from orchestrator.runlog import RunLog

__all__ = ["DeployHistory", "RollbackReport", "applied_since", "manual_rollback", "roll_back", "undo_scripts_for"]


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
            platform.rollback(previous)
            log.info(f"traffic back on {previous.version}")
        try:
            undone = tuple(undo_migrations())
        except MigrationError as exc:
            undone = tuple(exc.results)
            raise RollbackError(f"a migration could not be undone: {exc}") from exc
        if previous is not None:
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


# --- mode rollback ----------------------------------------------------------------------------


class DeployHistory(Protocol):
    """What a manual rollback asks the ledger (structurally typed: rollback never opens it)."""

    def deployments_after(self, version: str, environment: str | None = None) -> list[str] | None: ...

    def migration_digests(self, deployment_id: str) -> dict[str, str] | None: ...


def applied_since(
    version: str,
    runner: MigrationRunner | None,
    scripts: Sequence[MigrationScript],
    history: DeployHistory | None,
    *,
    environment: str,
    log: RunLog,
) -> list[MigrationResult]:
    """The migrations applied by every deploy since `version`, each undo script checked against the
    digest it was validated with. Reads only; raises GateError before anything is touched."""
    if runner is None:
        return []
    since = history.deployments_after(version, environment) if history else None
    if since is None:
        log.warn(f"the ledger has no record of {version} going live, so migrations applied since stay in place")
        return []
    undo_scripts = {s.key: s for s in scripts if s.kind == "undo"}
    applied: list[MigrationResult] = []
    for deployment_id in since:
        mine = runner.applied_by(deployment_id)
        if not mine:
            continue
        validated: Mapping[str, str] = (history.migration_digests(deployment_id) if history else None) or {}
        for migration in mine:
            undo = undo_scripts.get(version_key(migration.version))
            if undo is not None and validated.get(undo.filename) != undo.checksum:
                raise GateError(
                    f"gate artifacts: undo script {undo.filename} is not the one validated with deployment "
                    f"{deployment_id} (validated {validated.get(undo.filename) or 'nothing'}, now {undo.checksum}); "
                    "roll back from the commit that deployment came from",
                    gate="artifacts",
                    facts={"artifact": undo.filename, "deployment_id": deployment_id},
                )
        applied.extend(mine)
    return applied


def undo_scripts_for(applied: Sequence[MigrationResult], scripts: Sequence[MigrationScript]) -> dict[str, str]:
    """The undo scripts undoing `applied` would run: file name -> checksum."""
    undo = {s.key: s for s in scripts if s.kind == "undo"}
    return {u.filename: u.checksum for r in applied if (u := undo.get(version_key(r.version)))}


def manual_rollback(
    *,
    platform: Platform,
    target: Release,
    runner: MigrationRunner | None,
    applied: Sequence[MigrationResult],
    scripts: Sequence[MigrationScript],
    checks: Checks,
    budget_seconds: float,
    log: RunLog,
) -> RollbackReport:
    """Return to `target`, undo `applied`, re-check it through the public route. Never raises: a
    failure (production is then in doubt) comes back as `error`, for the caller to record and page."""
    began = time.monotonic()
    probes: tuple[HealthProbe, ...] = ()
    undone: tuple[MigrationResult, ...] = ()
    error: RollbackError | None = None
    passed = False
    try:
        with log.phase(f"Rollback to {target.version}"):
            platform.rollback(target)
            if applied and runner is not None:
                try:
                    undone = tuple(runner.undo(applied, scripts=scripts))
                except MigrationError as exc:
                    undone = tuple(exc.results)
                    raise
            verdict = checks.release(platform.live_url(), analysis=False, deadline=began + budget_seconds)
            probes, passed = verdict.probes, verdict.passed
            if isinstance(platform, NativeRollback):
                platform.confirm_rollback(verdict.passed)
        if not passed:
            error = RollbackError(f"{target.version} is unhealthy after the rollback: {verdict.reason}")
    except Exception as exc:  # whatever broke, production is in doubt: record it and page
        if isinstance(platform, NativeRollback):
            with suppress(Exception):
                platform.confirm_rollback(False)
        error = RollbackError(f"the manual rollback to {target.version} failed: {exc}")
        error.__cause__ = exc
    outcome = RollbackOutcome(
        triggered=True,
        reason=f"manual rollback to {target.version}",
        previous_version=target.version,
        duration_seconds=round(time.monotonic() - began, 3),
        succeeded=error is None,
    )
    return RollbackReport(outcome=outcome, probes=probes, undone=undone, error=error)
