"""The manual rollback (`mode: rollback`): back to a chosen good release, on purpose.

Unlike the automatic rollback (`automatic.py`), which answers this run's own failure and undoes only
this run's migrations, a manual rollback goes back past any number of deploys: it undoes the
migrations every deploy since the target applied, each undo script held to the digest it was
validated with. Deciding (`plan_manual_rollback`: reads only, refuses before anything is touched) is
separate from doing (`roll_back_to`: platform, schema, re-check).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol

from orchestrator.contract import MigrationResult, RollbackOutcome
from orchestrator.errors import GateError, MigrationError, RollbackError
from orchestrator.health.verdict import Checks, CheckVerdict
from orchestrator.migrations.runner import MigrationRunner
from orchestrator.migrations.scripts import MigrationScript, first_unvalidated, undo_scripts_for
from orchestrator.platforms.base import NativeRollback, Platform, Release
from orchestrator.recovery import crash_points
from orchestrator.rollback.automatic import RollbackReport
from orchestrator.runlog import RunLog

__all__ = ["DeployHistory", "ManualRollback", "plan_manual_rollback", "roll_back_to"]


class DeployHistory(Protocol):
    """What the manual rollback reads from the ledger (`ledger.recorder.Ledger`)."""

    def deployments_after(self, version: str, environment: str | None = None) -> list[str] | None: ...

    def migration_digests(self, deployment_id: str) -> dict[str, str] | None: ...


@dataclass(frozen=True, slots=True)
class ManualRollback:
    """What a manual rollback will do, decided before anything is touched."""

    target: Release
    undo: tuple[MigrationResult, ...]
    """The migrations every deploy since `target` applied: undone, newest first, by their U scripts."""
    scripts: tuple[MigrationScript, ...]


def plan_manual_rollback(
    target: Release,
    *,
    runner: MigrationRunner | None,
    scripts: Sequence[MigrationScript],
    history: DeployHistory | None,
    environment: str,
    undo_provenance: Callable[[Mapping[str, str]], object],
    log: RunLog,
) -> ManualRollback:
    """Back to `target`, undoing the migrations applied by every deploy since, each undo script checked
    against the digest it was validated with, and the SQLAgent record of each that would run
    (`undo_provenance`, which raises GateError when one lacks it). Reads only; raises GateError
    before anything is touched."""
    version, nothing = target.version, ManualRollback(target=target, undo=(), scripts=tuple(scripts))
    if runner is None:
        return nothing
    since = history.deployments_after(version, environment) if history else None
    if history is None or since is None:
        log.warn(f"the ledger has no record of {version} going live, so migrations applied since stay in place")
        return nothing
    applied: list[MigrationResult] = []
    for deployment_id in since:
        mine = runner.applied_by(deployment_id)
        if not mine:
            continue
        validated = history.migration_digests(deployment_id) or {}
        stale = first_unvalidated(undo_scripts_for(mine, scripts), validated)
        if stale is not None:
            undo = stale[1]
            raise GateError(
                f"gate artifacts: undo script {undo.filename} is not the one validated with deployment "
                f"{deployment_id} (validated {validated.get(undo.filename) or 'nothing'}, now {undo.checksum}); "
                "roll back from the commit that deployment came from",
                gate="artifacts",
                facts={"artifact": undo.filename, "deployment_id": deployment_id},
            )
        applied.extend(mine)
    would_run = {undo.filename: undo.checksum for _, undo in undo_scripts_for(applied, scripts)}
    undo_provenance(would_run)
    return ManualRollback(target=target, undo=tuple(applied), scripts=tuple(scripts))


def roll_back_to(
    plan: ManualRollback,
    runner: MigrationRunner | None,
    *,
    platform: Platform,
    checks: Checks,
    budget_seconds: float,
    log: RunLog,
) -> RollbackReport:
    """The platform back on the plan's target, its migrations undone with `runner`, the target re-checked
    through the public route.

    Never raises: whatever broke, production is in doubt, so it comes back as `error` (a
    RollbackError) for the caller to record and page; the undo results so far are in `undone`."""
    target, applied = plan.target, plan.undo
    began = time.monotonic()
    reason = f"manual rollback to {target.version}"

    def report(
        verdict: CheckVerdict | None, undone: Sequence[MigrationResult], error: RollbackError | None
    ) -> RollbackReport:
        outcome = RollbackOutcome(
            triggered=True,
            reason=reason,
            previous_version=target.version,
            duration_seconds=round(time.monotonic() - began, 3),
            succeeded=error is None,
        )
        probes = verdict.probes if verdict is not None else ()
        return RollbackReport(outcome=outcome, probes=probes, undone=tuple(undone), error=error)

    undone: Sequence[MigrationResult] = ()
    try:
        with log.phase(f"Rollback to {target.version}"):
            platform.rollback(target)
            crash_points.reach("during-manual-rollback")
            if applied and runner is not None:
                try:
                    undone = runner.undo(applied, scripts=plan.scripts)
                except MigrationError as exc:
                    undone = exc.results
                    raise
            verdict = checks.release(platform.live_url(), analysis=False, deadline=began + budget_seconds)
            if isinstance(platform, NativeRollback):
                platform.confirm_rollback(verdict.passed)
    except Exception as exc:  # whatever broke, production is in doubt: record it and page
        if isinstance(platform, NativeRollback):
            with suppress(Exception):
                platform.confirm_rollback(False)
        failed = RollbackError(f"the manual rollback to {target.version} failed: {exc}")
        failed.__cause__ = exc
        return report(None, undone, failed)
    if not verdict.passed:
        unhealthy = RollbackError(f"{target.version} is unhealthy after the rollback: {verdict.reason}")
        return report(verdict, undone, unhealthy)
    return report(verdict, undone, None)
