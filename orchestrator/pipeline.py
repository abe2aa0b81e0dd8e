"""The ordered steps of one run. The only module that knows the sequence:

    deliver earlier pairs → ledger start → digests → gates → plan → migrations → Odoo upgrade →
    rollout (start, pre-switch health, switch, verification) → success | rollback →
    hardening → record

Each step is one call returning a typed outcome. A gate refusal stops before anything is
touched. A failure after a side effect triggers the rollback, which undoes traffic and this
run's migrations and re-checks the old release; if that fails, on-call is paged.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack

from orchestrator import gates, good_releases, odoo
from orchestrator.admission import admit
from orchestrator.compose import Collaborators
from orchestrator.contract import MigrationResult, Request, Result
from orchestrator.deploy_lock import hold_deploy_lock
from orchestrator.errors import ConfigError, DeployError, GateError, MigrationError, OrchestratorError, RollbackError
from orchestrator.github_updates import TrackedDeployment, track_deployment
from orchestrator.hardening import pairs as hardening_pairs
from orchestrator.migrations import scripts as migration_scripts
from orchestrator.migrations.plan import MigrationPlan
from orchestrator.migrations.runner import MigrationRunner
from orchestrator.migrations.session import migration_session
from orchestrator.platforms.base import Retirement
from orchestrator.platforms.registry import PRODUCTION, Target
from orchestrator.preview import preview_target, run_preview, run_teardown
from orchestrator.record import record_run
from orchestrator.rollback import RollbackReport, applied_since, manual_rollback, roll_back, undo_scripts_for
from orchestrator.run_state import NO_VERSION, RunState, result_of, unexpected
from orchestrator.runlog import RunLog, utc_now
from orchestrator.sqlagent import required_lines
from orchestrator.strategies import RolloutFailure, execute, plan_rollout

__all__ = ["Pipeline", "RunState"]


class Pipeline:
    def __init__(self, request: Request, parts: Collaborators, log: RunLog) -> None:
        """`parts` are built once, by `compose.assemble`; the pipeline only uses them."""
        self.request = request
        self.config = request.config
        self.inputs = request.inputs
        self.log = log
        self.parts = parts
        self.platform = parts.platform
        self.descriptor = parts.descriptor
        self.env = parts.env
        self.dsn = parts.secrets.dsn
        self.ledger_dsn = parts.secrets.ledger_dsn
        self.checks = parts.checks
        self.ledger = parts.ledger
        self.hardening = parts.hardening
        self.github = parts.github
        self.run_url = parts.run_url
        self.state = RunState(deployment_id=str(uuid.uuid4()), started_at=utc_now(), started=time.monotonic())
        self.tracked: TrackedDeployment | None = None
        self.modules: tuple[odoo.OdooModule, ...] = ()
        self._held = ExitStack()

    # --- the sequence ------------------------------------------------------------------------

    def run(self) -> Result:
        mode = self.inputs.mode
        self.log.info(
            f"deployment {self.state.deployment_id}: {mode} {self.inputs.version} "
            f"({self.config.deployment.strategy} on {self.config.deployment.platform})"
        )
        if mode != "plan":
            self.hardening.deliver_pending()
        if self.ledger and mode != "plan":
            self.ledger.start(self.state.deployment_id, self.request, run_url=self.run_url)
        with self._held:
            try:
                if mode == "rollback":
                    self._manual_rollback()
                elif mode == "preview":
                    self._preview()
                elif mode == "preview-teardown":
                    self._teardown()
                else:
                    self._deploy(plan_only=mode == "plan")
            except OrchestratorError as exc:
                self._fail(exc)
            except Exception as exc:  # still harden and record: a lost run is worse than a late traceback
                self._fail(unexpected(exc, self.log))
            self._harden()
            result = result_of(self.request, self.state, self.log.entries, self._url())
            with self.log.phase("Record"):
                record_run(self.request, result, self.parts, tracked=self.tracked, error=self.state.error, log=self.log)
        self.hardening.close()
        return result

    def _lock(self, target: Target) -> None:
        """Hold the deploy lock for `target` until the run is recorded (see deploy_lock.py)."""
        if self.ledger_dsn is None:
            self.log.warn(
                "no ledger database, so this deploy is not locked against others on the same target; "
                "use a workflow concurrency group"
            )
            return
        self._held.enter_context(
            hold_deploy_lock(
                self.ledger_dsn,
                f"{self.config.environment}/{self.descriptor.target_key(self.config.deployment, target)}",
                wait_seconds=self.config.deploy_lock.wait_seconds,
                deployment_id=self.state.deployment_id,
            )
        )

    def _at(self, step: str) -> None:
        """Record the pipeline position, so a crashed run shows where it stopped."""
        if self.ledger and self.inputs.mode != "plan":
            self.ledger.step(self.state.deployment_id, step)

    def _pass_gates(self) -> gates.GateReport:
        """Digest the artifacts and hold them against the verdicts. Raises GateError (or ConfigError)."""
        self._at("gates")
        admitted = admit(self.request, self.env, self._image(), self.log, extras=self.state.extras)
        self.modules = admitted.modules
        self.state.provenance.update(admitted.report.provenance.files)
        return admitted.report

    def _deploy(self, *, plan_only: bool) -> None:
        with self.log.phase("Gates"):
            report = self._pass_gates()
        if not plan_only:
            self._lock(PRODUCTION)
            self._track(production=True, environment=self.config.environment)
        self.state.previous = self.platform.live()
        previous = self.state.previous.version if self.state.previous else None
        rollout = plan_rollout(
            self.config, platform=self.platform, old=previous, new=self.inputs.version, image=self._image()
        )
        scripts = migration_scripts.discover(self.config.artifacts.migrations, self.inputs.workspace)
        changed_modules = odoo.plan_upgrade(self.modules, report.digests, self._previous_module_digests())

        with self._migration_session(scripts, read_only=plan_only) as runner:
            migration_plan = runner.plan(scripts, report.approved_migrations) if runner else None
            plan_lines = migration_plan.describe() if migration_plan else ["no migrations"]
            sqlagent_lines = required_lines(report.digests)
            self.state.extras["plan"] = {
                "rollout": rollout.describe(),
                "migrations": plan_lines,
                "sqlagent": sqlagent_lines,
                "odoo_upgrade": list(changed_modules),
            }
            for line in [*plan_lines, *sqlagent_lines, *rollout.describe()]:
                self.log.info(f"plan: {line}")
            if plan_only:
                self.state.succeed()
                return
            applied: list[MigrationResult] = []
            rollout_began = False
            try:
                if runner and migration_plan:
                    self._at("migrations")
                    with self.log.phase("Migrations"):
                        applied = self._apply_migrations(runner, migration_plan)
                if changed_modules:
                    self._at("odoo-upgrade")
                    odoo.upgrade(changed_modules, self.config.odoo, self.env, self.inputs.workspace, log=self.log)
                rollout_began = True
                self._at("rollout")
                with self.log.phase(f"Rollout: {self.config.deployment.strategy} to {self.inputs.version}"):
                    outcome = execute(rollout, self.platform, self.checks, self.log)
                self.state.probes.extend(outcome.probes)
                self.state.traffic_moved = outcome.traffic_moved
            except Exception as raised:
                exc = raised if isinstance(raised, OrchestratorError) else unexpected(raised, self.log)
                if isinstance(exc, MigrationError):
                    applied = [r for r in exc.results if r.success]
                # An error we did not foresee may have struck mid-switch: sending traffic back is
                # idempotent, so assume it moved.
                traffic_moved = rollout_began and exc is not raised
                if isinstance(exc, RolloutFailure):
                    self.state.probes.extend(exc.outcome.probes)
                    traffic_moved = exc.outcome.traffic_moved
                self.state.traffic_moved = traffic_moved
                self._roll_back_after(exc, runner, applied, traffic_moved)
                return
        try:
            keep = self.config.rollback.keep_previous_versions
            retired = self.platform.retire(keep) if isinstance(self.platform, Retirement) else []
        except OrchestratorError as exc:
            # The new release is live and verified; old ones left running cost resources, not users.
            self.log.warn(f"retiring releases beyond keep_previous_versions failed: {exc}")
            retired = []
        if retired:
            self.log.info(f"retired releases beyond keep_previous_versions: {', '.join(retired)}")
        self.state.succeed()
        self.log.info(f"{self.inputs.version} is live at {self.platform.live_url()}")

    def _apply_migrations(self, runner: MigrationRunner, plan: MigrationPlan) -> list[MigrationResult]:
        try:
            applied = runner.apply(plan)
        except MigrationError as exc:
            self.state.migrations.extend(exc.results)
            raise
        self.state.migrations.extend(applied)
        return applied

    def _migration_session(
        self, scripts: Sequence[migration_scripts.MigrationScript], *, read_only: bool
    ) -> AbstractContextManager[MigrationRunner | None]:
        return migration_session(
            scripts, self.dsn, self.config, self.env, deployment_id=self.state.deployment_id, read_only=read_only
        )

    def _roll_back_after(
        self,
        exc: OrchestratorError,
        runner: MigrationRunner | None,
        applied: Sequence[MigrationResult],
        traffic_moved: bool,
    ) -> None:
        cause = exc.cause if isinstance(exc, RolloutFailure) else exc
        self.state.error = self.state.cause = cause
        reason = f"{cause.step}: {cause}"
        if not self.config.rollback.auto_rollback_on_failure:
            self.log.error(f"{reason} (auto_rollback_on_failure is false: nothing undone)")
            self.state.status, self.state.exit_code = "failed", 1
            return
        self._at("rollback")
        with self.log.phase("Rollback"):
            report = self._roll_back(reason, runner, applied, traffic_moved)
        self._absorb(report)

    def _roll_back(
        self, reason: str, runner: MigrationRunner | None, applied: Sequence[MigrationResult], traffic_moved: bool
    ) -> RollbackReport:
        def undo() -> Sequence[MigrationResult]:
            return runner.undo(applied) if runner and applied else []

        return roll_back(
            platform=self.platform,
            previous=good_releases.automatic_target(
                self.state.previous, self.platform.releases, self._judgement(), failed_version=self.inputs.version
            ),
            failed_version=self.inputs.version,
            traffic_moved=traffic_moved,
            reason=reason,
            checks=self.checks,
            undo_migrations=undo,
            budget_seconds=self.config.rollback.max_rollback_duration_seconds,
            log=self.log,
        )

    def _absorb(self, report: RollbackReport) -> None:
        self.state.rollback = report.outcome
        self.state.probes.extend(report.probes)
        self.state.migrations.extend(report.undone)
        if report.error is None:
            self.state.status = "rolled_back"
        else:
            self.state.status = "failed"
            self.state.error = report.error
        self.state.exit_code = 1

    def _manual_rollback(self) -> None:
        self._lock(PRODUCTION)
        releases = self.platform.releases()
        live = self.state.previous = self.platform.live()
        target = good_releases.rollback_target(self.inputs.rollback_to, releases, live, self._judgement())
        self.state.released = target.version
        self.log.info(f"manual rollback from {live.version if live else NO_VERSION} to {target.version}")
        scripts = migration_scripts.discover(self.config.artifacts.migrations, self.inputs.workspace)
        with self._migration_session(scripts, read_only=False) as runner:
            environment = self.config.environment
            applied = applied_since(target.version, runner, scripts, self.ledger, environment=environment, log=self.log)
            if would_run := undo_scripts_for(applied, scripts):
                source = gates.open_source(self.config, self.env)
                self.state.provenance.update(gates.check_undo_provenance(would_run, source))
            report = manual_rollback(
                platform=self.platform,
                target=target,
                runner=runner,
                applied=applied,
                scripts=scripts,
                checks=self.checks,
                budget_seconds=self.config.rollback.max_rollback_duration_seconds,
                log=self.log,
            )
        self.state.rollback = report.outcome
        self.state.probes.extend(report.probes)
        self.state.migrations.extend(report.undone)
        if report.error is not None:
            raise report.error
        self.state.succeed(status="rolled_back")

    def _judgement(self) -> good_releases.ReleaseJudgement | None:
        """The ledger's view of which releases are good (None: no ledger, the platform's list decides)."""
        if self.ledger is None or self.ledger_dsn is None:
            return None
        try:
            return good_releases.read_judgement(
                self.ledger_dsn,
                schema=self.config.ledger.schema,
                environment=self.config.environment,
                platform=self.config.deployment.platform,
                exclude=self.state.deployment_id,
            )
        except OrchestratorError as exc:
            self.log.warn(f"the ledger cannot say which releases are good ({exc}); going by the platform's list")
            return None

    def _preview(self) -> None:
        target = preview_target(self.inputs, self.env, run_url=self.run_url)
        self._pass_gates()
        self._lock(self.parts.target)
        analysis = self.config.verification.before_switch
        outcome = run_preview(
            self.platform, target, lambda url: self.checks.release(url, analysis=analysis), self.github, self.log
        )
        self.state.probes.extend(outcome.probes)
        self.state.url = outcome.url
        self.state.extras["preview"] = {
            "pr_number": target.pr_number,
            "url": outcome.url,
            "github_deployment_id": outcome.github_deployment_id,
            "github_skipped": outcome.github_skipped,
        }
        if outcome.status != "success":
            raise DeployError(outcome.error or "the preview failed", operation=outcome.failed_step or "preview")
        self.state.succeed()

    def _teardown(self) -> None:
        pr_number = self.parts.target.pr_number
        if pr_number is None:
            raise ConfigError("pr-number: required in preview modes (run on pull_request events or pass --pr-number)")
        self._lock(self.parts.target)
        outcome = run_teardown(self.platform, pr_number, self.github, self.log)
        self.state.extras["preview"] = {"pr_number": pr_number, "deleted": outcome.deleted}
        if outcome.status != "success":
            raise DeployError(outcome.error or "the preview teardown failed", operation="preview-teardown")
        self.state.succeed()

    def _track(self, *, production: bool, environment: str) -> None:
        """A GitHub Deployment for this run (never fatal; skipped without a token)."""
        self.tracked = track_deployment(
            self.github,
            ref=self.env.get("GITHUB_SHA") or self.inputs.version,
            environment=environment,
            production=production,
            description=f"deploy {self.inputs.version}",
            payload={"version": self.inputs.version, "deployment_id": self.state.deployment_id},
            log_url=self.run_url,
            log_to=self.log,
        )

    def _fail(self, exc: OrchestratorError) -> None:
        self.state.error = exc
        self.state.exit_code = exc.exit_code
        if not self.state.rollback.triggered or isinstance(exc, RollbackError):
            self.state.status = "failed"
        if isinstance(exc, GateError):
            self.log.error(f"refused by the {exc.gate} gate: {exc}")
        else:
            self.log.error(f"{exc.step} failed: {exc}")

    # --- after the run -----------------------------------------------------------------------

    def _harden(self) -> None:
        """Every failed deploy, rollback and failed rollback becomes a preference pair (exit 2 and 3 touch
        nothing, so there is nothing to learn from them here)."""
        s = self.state
        if s.exit_code != 1 or self.inputs.mode == "plan":
            return
        if self.config.agentbench.emit_dpo_on_failure:
            s.hardening = self.hardening.emit(hardening_pairs.FailureContext.from_run(self.request, s))
        else:
            s.hardening = self.hardening.queued_outcome()

    def _image(self) -> str | None:
        return self.inputs.image or self.config.artifacts.docker_image

    def _url(self) -> str | None:
        if self.state.url is not None:
            return self.state.url
        try:
            return self.platform.live_url()
        except OrchestratorError:
            return None

    def _previous_module_digests(self) -> Mapping[str, str]:
        if self.ledger is None or self.inputs.mode == "plan":
            return {}
        return self.ledger.last_module_digests(self.config.environment)
