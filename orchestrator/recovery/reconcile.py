"""Recovery: bring the target back to a verified good release after runs that died, and settle them.

Runs under the deploy lock, before the run that found the crash touches anything, in the order a
rollback uses (users first):

1. end the database sessions the dead run left working (a statement still running for it holds
   the migration lock, and a CREATE INDEX CONCURRENTLY would otherwise finish behind our back);
2. traffic: the newest good release serves (good_releases.py), or, for a run that died after its
   verification passed, its own release; a manual rollback that died is finished to its target;
3. schema: what a killed no-transaction script left is cleaned up (migrations/leftovers.py), and the
   dead run's committed migrations are undone when the serving release predates them (history
   rows carry the deployment id; undo scripts must match the digests its gates approved and carry
   the SQLAgent's record, sqlagent.py);
4. the serving release is verified through the public route, the dead run's own release stopped;
5. one preference pair per dead run (pair.py), then its row is settled as `crashed` with all of this.

A step that fails ends the recovery with a RecoveryError (a RollbackError: on-call is paged), the row
still settled so it never blocks later runs, with what was and was not done.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.contract import DeployConfig, MigrationProvenance, MigrationResult
from orchestrator.errors import GateError, OrchestratorError, RollbackError
from orchestrator.good_releases import ReleaseJudgement, read_judgement
from orchestrator.hardening.loop import Hardening
from orchestrator.health.verdict import Checks
from orchestrator.migrations.runner import MigrationRunner
from orchestrator.migrations.scripts import MigrationScript, first_unvalidated, undo_scripts_for
from orchestrator.platforms.base import NativeRollback, Platform, Release, Retirement
from orchestrator.recovery import crashed as rows
from orchestrator.recovery.crashed import CrashedRun
from orchestrator.recovery.pair import crash_context
from orchestrator.redaction import Secret
from orchestrator.rollback import start_rollback
from orchestrator.runlog import RunLog

__all__ = ["RecoveryContext", "RecoveryError", "RecoveryReport", "reconcile"]


class RecoveryError(RollbackError):
    """Recovery could not bring the target to a verified good release; production is in doubt."""

    step = "recover"
    report: RecoveryReport | None = None


@dataclass(frozen=True, slots=True)
class RecoveryContext:
    """What recovery needs from the run that performs it."""

    deployment_id: str
    config: DeployConfig
    platform: Platform
    checks: Checks
    ledger_dsn: Secret
    dsn: Secret | None
    scripts: Sequence[MigrationScript]
    installed_by: str
    hardening: Hardening | None
    log: RunLog
    deployments_after: Callable[[str], list[str] | None]
    validated_digests: Callable[[str], dict[str, str] | None]
    undo_provenance: Callable[[Mapping[str, str]], Mapping[str, MigrationProvenance]]
    """Undo file name -> sha256 to the SQLAgent record of each; raises GateError when one has none."""
    run_url: str | None = None


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    crashed: tuple[str, ...]
    actions: tuple[str, ...]
    serving: str | None
    verified: bool
    moved_traffic: bool
    seconds: float
    undone: tuple[MigrationResult, ...] = ()
    pairs: int = 0
    error: str | None = None
    steps: Mapping[str, str] = field(default_factory=dict)
    verified_at: float | None = None
    """Wall-clock time (epoch seconds) the serving release passed its verification."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "crashed": list(self.crashed),
            "crashed_steps": dict(self.steps),
            "actions": list(self.actions),
            "serving": self.serving if self.verified else None,
            "unverified_serving": None if self.verified else self.serving,
            "verified": self.verified,
            "moved_traffic": self.moved_traffic,
            "seconds": self.seconds,
            "pairs": self.pairs,
            "error": self.error,
            "verified_at": self.verified_at,
        }


def reconcile(ctx: RecoveryContext) -> RecoveryReport | None:
    """Recover from every crashed run on this target; None when there is none. Never raises but
    RecoveryError (after settling the rows) and LedgerError (crashed runs cannot be looked up)."""
    schema = ctx.config.ledger.schema
    d = ctx.config.deployment
    found = rows.find_crashed(
        ctx.ledger_dsn,
        schema=schema,
        environment=ctx.config.environment,
        platform=d.platform,
        exclude=ctx.deployment_id,
    )
    if not found:
        return None
    began = time.monotonic()
    described = ", ".join(f"{r.deployment_id} ({r.mode} {r.new_version}, died at {r.current_step})" for r in found)
    ctx.log.warn(f"recovery: {len(found)} run(s) on this target died before finishing: {described}")
    work = _Recovery(ctx, found, began)
    try:
        work.run()
    except OrchestratorError as exc:
        work.error = str(exc)
    except Exception as exc:  # a driver error or a bug: the rows must still be settled and someone paged
        ctx.log.error("unexpected error during recovery:\n" + "".join(traceback.format_exception(exc)))
        work.error = f"unexpected {type(exc).__name__}: {exc}"
    report = work.report()
    for line in report.actions:
        ctx.log.info(f"recovery: {line}")
    pairs = _emit_pairs(ctx, found)
    report = dataclasses.replace(report, pairs=pairs)
    for run in found:
        error = f"the run's process died during step '{run.current_step}'; recovered by deployment {ctx.deployment_id}"
        rows.settle(ctx.ledger_dsn, run, schema=schema, recovery=report.to_dict(), error=error)
    if report.error is not None:
        ctx.log.error(f"RECOVERY FAILED: {report.error}")
        failure = RecoveryError(f"recovery after the crashed run(s) failed: {report.error}")
        failure.report = report
        raise failure
    ctx.log.info(f"recovery: {report.serving} serves, verified, {report.seconds:.2f} s after recovery began")
    return report


class _Recovery:
    def __init__(self, ctx: RecoveryContext, found: Sequence[CrashedRun], began: float) -> None:
        self.ctx = ctx
        self.found = found
        self.began = began
        self.actions: list[str] = []
        self.undone: list[MigrationResult] = []
        self.serving: str | None = None
        self.verified = False
        self.verified_at: float | None = None
        self.moved = False
        self.error: str | None = None

    def report(self) -> RecoveryReport:
        return RecoveryReport(
            crashed=tuple(r.deployment_id for r in self.found),
            actions=tuple(self.actions),
            serving=self.serving,
            verified=self.verified,
            moved_traffic=self.moved,
            seconds=round(time.monotonic() - self.began, 3),
            undone=tuple(self.undone),
            error=self.error,
            verified_at=self.verified_at,
            steps={r.deployment_id: r.current_step or "start" for r in self.found},
        )

    def run(self) -> None:
        ctx = self.ctx
        for run in self.found:
            ended = rows.end_sessions(ctx.ledger_dsn, run.deployment_id)
            if ended:
                self.actions.append(f"ended {ended} database session(s) {run.deployment_id} left running")
        judgement = read_judgement(
            ctx.ledger_dsn,
            schema=ctx.config.ledger.schema,
            environment=ctx.config.environment,
            platform=ctx.config.deployment.platform,
        )
        live = ctx.platform.live()
        target = self._target(live, ctx.platform.releases(), judgement)
        if target is None:
            self.serving = live.version if live else None
            self.actions.append(
                f"no good release to return to: {live.version} keeps serving" if live else "no release was live"
            )
        elif live is None or live.version != target.version:
            start_rollback(ctx.platform, target, ctx.log)
            self.moved = True
            self.serving = target.version
            self.actions.append(f"traffic back on {target.version} (was on {live.version if live else 'nothing'})")
        else:
            self.serving = target.version
            self.actions.append(f"{target.version} was still serving")
        refusal = self._schema()
        if self.serving is not None:
            verdict = ctx.checks.release(
                ctx.platform.live_url(),
                analysis=False,
                deadline=self.began + ctx.config.rollback.max_rollback_duration_seconds,
            )
            if not verdict.passed:
                if self.moved and isinstance(ctx.platform, NativeRollback):
                    # Settled either way: a rollback left pinned would refuse every later deploy.
                    ctx.platform.confirm_rollback(False)
                raise RecoveryError(f"{self.serving} is unhealthy through the public route: {verdict.reason}")
            if isinstance(ctx.platform, NativeRollback):
                ctx.platform.confirm_rollback(True)
            self.verified = True
            self.verified_at = time.time()
            self.actions.append(f"{self.serving} verified through the public route")
        self._stop_leftover_releases()
        if refusal:
            raise RecoveryError(refusal)

    def _target(self, live: Release | None, releases: Sequence[Release], judgement: ReleaseJudgement) -> Release | None:
        latest = self.found[-1]
        suspect = {
            r.new_version
            for r in self.found
            if r.mode == "deploy" and r.new_version != r.previous_version and r.current_step != "verified"
        }
        known = {r.version: r for r in releases}
        if live is not None:
            known.setdefault(live.version, live)
        finishing = (latest.mode == "rollback" and latest.current_step in ("rollback", "verified")) or (
            latest.mode == "deploy" and latest.current_step == "verified"
        )
        if finishing and latest.new_version in known:
            return known[latest.new_version]

        def good(version: str) -> bool:
            return version not in suspect and judgement.is_candidate(version)

        if live is not None and good(live.version):
            return live
        return next((r for r in releases if good(r.version)), None)

    def _schema(self) -> str | None:
        """Clean up and undo; returns a refusal (what a person must do) or None."""
        ctx = self.ctx
        if ctx.dsn is None or not ctx.scripts:
            return None
        latest = self.found[-1]
        with MigrationRunner(
            ctx.dsn, ctx.config.migrations, deployment_id=ctx.deployment_id, installed_by=ctx.installed_by
        ) as runner:
            left = runner.clean_up_leftovers(ctx.scripts, deployment_id=latest.deployment_id)
            self.actions.extend(left.actions)
            for run in reversed(self.found):
                applied = self._to_undo(run, runner)
                if not applied:
                    continue
                try:
                    self.undone.extend(runner.undo(applied, scripts=ctx.scripts))
                finally:
                    self.undone.extend(r for r in runner.last_results if r not in self.undone)
                names = ", ".join(m.filename for m in applied)
                self.actions.append(f"undid {names} ({run.deployment_id}): {self.serving or 'nothing'} predates them")
        return left.refusal

    def _to_undo(self, run: CrashedRun, runner: MigrationRunner) -> list[MigrationResult]:
        if run.mode == "deploy":
            if self.serving == run.new_version:
                return []
            applied = runner.applied_by(run.deployment_id)
            self._check_undo_scripts(applied, run.migration_digests, run.deployment_id)
            return applied
        if run.mode == "rollback" and self.serving == run.new_version and self.serving is not None:
            since = self.ctx.deployments_after(self.serving) or []
            applied = []
            for deployment_id in since:
                mine = runner.applied_by(deployment_id)
                self._check_undo_scripts(mine, self.ctx.validated_digests(deployment_id) or {}, deployment_id)
                applied.extend(mine)
            return applied
        return []

    def _check_undo_scripts(
        self, applied: Sequence[MigrationResult], validated: Mapping[str, str], deployment_id: str
    ) -> None:
        undos = undo_scripts_for(applied, self.ctx.scripts)
        stale = first_unvalidated(undos, validated)
        if stale is not None:
            migration, undo = stale
            raise RecoveryError(
                f"undo script {undo.filename} is not the one validated with deployment {deployment_id} "
                f"(validated {validated.get(undo.filename) or 'nothing'}, now {undo.checksum}), so "
                f"{migration.filename} stays applied; run `deploy-orchestrator recover` from the commit that "
                "deployment came from"
            )
        would_run = {undo.filename: undo.checksum for _, undo in undos}
        if not would_run:
            return
        try:
            self.ctx.undo_provenance(would_run)
        except GateError as exc:
            raise RecoveryError(
                f"the undo scripts of deployment {deployment_id} stay unrun, its migrations applied: {exc}"
            ) from None

    def _stop_leftover_releases(self) -> None:
        platform = self.ctx.platform
        if not isinstance(platform, Retirement):
            return  # its releases hold nothing to stop (App Platform replaces instances itself)
        kept = {r.version for r in platform.releases()}
        for run in self.found:
            version = run.new_version
            if run.mode != "deploy" or version not in kept or version in (self.serving, run.previous_version):
                continue
            try:
                platform.stop(version)
            except OrchestratorError as exc:
                self.actions.append(f"could not stop {version}: {exc}")
            else:
                self.actions.append(f"stopped {version}, the dead run's release")


def _emit_pairs(ctx: RecoveryContext, found: Sequence[CrashedRun]) -> int:
    if ctx.hardening is None or not ctx.config.agentbench.emit_dpo_on_failure:
        return 0
    schema = ctx.config.ledger.schema
    contexts = [
        crash_context(
            run, environment=ctx.config.environment, platform=ctx.config.deployment.platform, run_url=ctx.run_url
        )
        for run in found
        if not rows.has_pair(ctx.ledger_dsn, run.deployment_id, schema=schema)
    ]
    if not contexts:
        return 0
    outcome = ctx.hardening.emit(*contexts)
    return outcome.dpo_pairs_generated
