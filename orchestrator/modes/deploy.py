"""mode deploy (and plan, which stops after the plan): gates → lock → plan → migrations → Odoo
upgrade → rollout → retire, and on a failure after a side effect the automatic rollback
(`rollback/automatic.py`), which undoes traffic and this run's migrations and re-checks the old release.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress

from orchestrator import good_releases, odoo
from orchestrator.canary.webhooks import PhaseHooks
from orchestrator.contract import MigrationResult
from orchestrator.errors import DeployError, MigrationError, OrchestratorError
from orchestrator.migrations.plan import MigrationPlan
from orchestrator.migrations.runner import MigrationRunner
from orchestrator.platforms.base import PinsArtifacts, Retirement, TrafficRouter, answers_on_a_url
from orchestrator.recovery import crash_points
from orchestrator.rollback import RollbackReport, roll_back
from orchestrator.run_state import NO_VERSION
from orchestrator.run_steps import RunSteps, unexpected
from orchestrator.sqlagent import planned_lines
from orchestrator.strategies import RolloutFailure, RolloutOutcome, execute, plan_rollout

__all__ = ["Deploy"]


class Deploy:
    def __init__(self, steps: RunSteps) -> None:
        self.steps = steps
        self.state = steps.state
        self.platform = steps.platform
        self.config = steps.config
        self.version = steps.inputs.version
        self.log = steps.log
        self.hooks: PhaseHooks | None = None

    def run(self, *, plan_only: bool) -> None:
        steps, state = self.steps, self.state
        self.hooks = steps.parts.phase_hooks()
        steps.look_at_what_serves()
        with self.log.phase("Gates"):
            report = steps.pass_gates()
        if not plan_only:
            if isinstance(self.platform, PinsArtifacts):
                self.platform.pin_artifacts(self.version, report.digests)
            steps.lock(steps.production_key())
            crash_points.reach("after-gates")
            steps.track(production=True, environment=self.config.environment)
        state.previous = self.platform.live()
        previous = state.previous.version if state.previous else None
        if not plan_only:
            steps.checkpoint(digests=state.extras.get("artifacts"), previous=previous or NO_VERSION)
        rollout = plan_rollout(self.config, platform=self.platform, old=previous, new=self.version, image=steps.image())
        scripts = steps.migration_scripts()
        changed_modules = odoo.plan_upgrade(steps.modules, report.digests, self._previous_module_digests())

        with steps.parts.migrations.session(scripts, read_only=plan_only) as runner:
            migration_plan = runner.plan(scripts, report.approved_migrations) if runner else None
            plan_lines = migration_plan.describe() if migration_plan else ["no migrations"]
            sqlagent_lines = planned_lines(report.digests)
            state.extras["plan"] = {
                "rollout": rollout.describe(),
                "migrations": plan_lines,
                "sqlagent": sqlagent_lines,
                "odoo_upgrade": list(changed_modules),
            }
            for line in [*plan_lines, *sqlagent_lines, *rollout.describe()]:
                self.log.info(f"plan: {line}")
            if plan_only:
                state.succeeded()
                return
            applied: list[MigrationResult] = []
            rollout_began = False
            try:
                if runner and migration_plan:
                    steps.at("migrations")
                    with self.log.phase("Migrations"):
                        applied = self._apply_migrations(runner, migration_plan)
                if changed_modules:
                    steps.at("odoo-upgrade")
                    odoo.upgrade(
                        changed_modules, self.config.odoo, steps.parts.env, steps.inputs.workspace, log=self.log
                    )
                rollout_began = True
                steps.at("rollout")
                with self.log.phase(f"Rollout: {self.config.deployment.strategy} to {self.version}"):
                    checks, meter = steps.parts.checks, steps.parts.meter
                    outcome = execute(rollout, self.platform, checks, self.log, hooks=self.hooks, meter=meter)
                self._canary_record(outcome)
                state.probes.extend(outcome.probes)
                state.traffic_moved = outcome.traffic_moved
            except Exception as raised:
                exc = raised if isinstance(raised, OrchestratorError) else unexpected(raised, self.log)
                if isinstance(exc, MigrationError):
                    applied = [r for r in exc.results if r.success]
                # An error we did not foresee may have struck mid-switch: sending traffic back is
                # idempotent, so assume it moved.
                traffic_moved = rollout_began and exc is not raised
                if isinstance(exc, RolloutFailure):
                    self._canary_record(exc.outcome)
                    state.probes.extend(exc.outcome.probes)
                    traffic_moved = exc.outcome.traffic_moved
                state.traffic_moved = traffic_moved
                self._roll_back_after(exc, runner, applied, traffic_moved)
                return
        steps.at("verified")
        self._retire()
        state.succeeded()
        where = (
            f"at {self.platform.live_url()}" if answers_on_a_url(self.platform) else "(no URL: workers and jobs only)"
        )
        self.log.info(f"{self.version} is live {where}")

    def _retire(self) -> None:
        try:
            keep = self.config.rollback.keep_previous_versions
            retired = self.platform.retire(keep) if isinstance(self.platform, Retirement) else []
        except OrchestratorError as exc:
            # The new release is live and verified; old ones left running cost resources, not users.
            self.log.warn(f"retiring releases beyond keep_previous_versions failed: {exc}")
            retired = []
        if retired:
            self.log.info(f"retired releases beyond keep_previous_versions: {', '.join(retired)}")

    def _canary_record(self, outcome: RolloutOutcome) -> None:
        if outcome.verdicts:
            self.state.extras["canary_analysis"] = [v.to_dict() for v in outcome.verdicts]
        if self.hooks:
            self.state.extras["webhooks"] = self.hooks.to_dict()

    def _apply_migrations(self, runner: MigrationRunner, plan: MigrationPlan) -> list[MigrationResult]:
        try:
            applied = runner.apply(plan)
        except MigrationError as exc:
            self.state.migrations.extend(exc.results)
            raise
        self.state.migrations.extend(applied)
        return applied

    def _roll_back_after(
        self,
        exc: OrchestratorError,
        runner: MigrationRunner | None,
        applied: Sequence[MigrationResult],
        traffic_moved: bool,
    ) -> None:
        state = self.state
        cause = exc.cause if isinstance(exc, RolloutFailure) else exc
        state.error = state.cause = cause
        reason = f"{cause.step}: {cause}"
        returned_to = cause.returned_to if isinstance(cause, DeployError) else None
        if returned_to is not None:
            # It went live, so "never went live" would be untrue: the platform already put traffic
            # back, and the rollback below undoes the schema and verifies the release it returned to.
            self.log.error(
                f"{reason}; {self.version} went live and {self.config.deployment.platform} "
                f"returned traffic to {returned_to} at once"
            )
        elif not isinstance(self.platform, TrafficRouter) and not traffic_moved and not applied:
            # The platform kept the old release serving (its deployment never went live) and no
            # migration ran: there is nothing to roll back, and claiming one would be untrue.
            serving = state.previous
            with suppress(OrchestratorError):
                serving = self.platform.live()
            self.log.error(
                f"{reason}; {self.version} never went live, so nothing was rolled back: "
                f"{serving.version if serving else 'no release'} is still serving"
            )
            state.failed()
            return
        if not self.config.rollback.auto_rollback_on_failure:
            undone = "nothing else" if returned_to else "nothing"
            self.log.error(f"{reason} (auto_rollback_on_failure is false: {undone} undone)")
            state.failed()
            return
        self.steps.at("rollback")
        with self.log.phase("Rollback"):
            report = self._roll_back(reason, runner, applied, traffic_moved)
        self._absorb(report)
        if self.hooks:
            back_to = report.outcome.previous_version
            self.hooks.phase("rollback", {"version": self.version, "previous": back_to, "reason": reason})
            state.extras["webhooks"] = self.hooks.to_dict()

    def _roll_back(
        self, reason: str, runner: MigrationRunner | None, applied: Sequence[MigrationResult], traffic_moved: bool
    ) -> RollbackReport:
        def undo() -> Sequence[MigrationResult]:
            return runner.undo(applied) if runner and applied else []

        judgement = self.steps.judgement()
        return roll_back(
            platform=self.platform,
            previous=good_releases.automatic_target(
                self.state.previous, self.platform.releases, judgement, failed_version=self.version
            ),
            failed_version=self.version,
            traffic_moved=traffic_moved,
            reason=reason,
            checks=self.steps.parts.checks,
            undo_migrations=undo,
            budget_seconds=self.config.rollback.max_rollback_duration_seconds,
            log=self.log,
        )

    def _absorb(self, report: RollbackReport) -> None:
        state = self.state
        state.rollback = report.outcome
        back_to = report.outcome.previous_version
        state.probes.extend(p.during("rollback re-check", back_to) for p in report.probes)
        state.migrations.extend(report.undone)
        state.status = "rolled_back" if report.error is None else "failed"
        if report.error is not None:
            state.error = report.error
        state.exit_code = 1

    def _previous_module_digests(self) -> dict[str, str]:
        ledger = self.steps.parts.ledger
        if ledger is None or self.steps.inputs.mode == "plan":
            return {}
        return ledger.last_module_digests(self.config.environment)
