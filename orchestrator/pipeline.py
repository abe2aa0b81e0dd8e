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
import traceback
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from orchestrator import artifacts as artifact_digests
from orchestrator import gates, good_releases, ledger, metrics, notify, odoo, platform_outputs
from orchestrator.app_delete import run_delete
from orchestrator.canary.prometheus import PrometheusMeter
from orchestrator.canary.traffic import TrafficMeter
from orchestrator.canary.webhooks import PhaseHooks
from orchestrator.contract import (
    DeploymentDetails,
    HardeningOutcome,
    HealthProbe,
    MigrationProvenance,
    MigrationResult,
    Request,
    Result,
    RollbackOutcome,
    Status,
)
from orchestrator.deploy_lock import hold_deploy_lock
from orchestrator.errors import (
    ConfigError,
    DeployError,
    GateError,
    LockError,
    MigrationError,
    OrchestratorError,
    RollbackError,
)
from orchestrator.github import GitHubClient
from orchestrator.github_event import validated_commit
from orchestrator.github_updates import GitHubUpdates, TrackedDeployment, track_deployment
from orchestrator.hardening import pairs as hardening_pairs
from orchestrator.hardening.loop import Hardening
from orchestrator.health.release_checks import ReleaseChecks
from orchestrator.migrations import scripts as migration_scripts
from orchestrator.migrations.plan import MigrationPlan
from orchestrator.migrations.runner import MigrationRunner
from orchestrator.platforms import registry
from orchestrator.platforms.base import (
    PinsArtifacts,
    Platform,
    Release,
    Retirement,
    TrafficRouter,
    answers_on_a_url,
)
from orchestrator.preview import preview_target, run_preview, run_teardown
from orchestrator.recovery import crash_points
from orchestrator.recovery import crashed as crashed_rows
from orchestrator.recovery.cancel import Cancelled, cancel_rollout, on_signals
from orchestrator.recovery.deletes import finish_deletes, target_recorder
from orchestrator.recovery.liveness import hold_run_lock
from orchestrator.recovery.reconcile import RecoveryContext, RecoveryError, RecoveryReport, reconcile
from orchestrator.redaction import Secret
from orchestrator.rollback import RollbackReport, roll_back
from orchestrator.rollback import manual as manual_rollback
from orchestrator.runlog import RunLog, utc_now
from orchestrator.sqlagent import attach_provenance, planned_lines
from orchestrator.strategies import RolloutFailure, RolloutOutcome, execute, plan_rollout

__all__ = ["Pipeline", "RunState"]

NO_VERSION = "none"


@dataclass
class RunState:
    """What the run has done so far: everything the result, the ledger and the pair are built from."""

    deployment_id: str
    started_at: str
    started: float
    previous: Release | None = None
    probes: list[HealthProbe] = field(default_factory=list)
    migrations: list[MigrationResult] = field(default_factory=list)
    provenance: dict[str, MigrationProvenance] = field(default_factory=dict)
    """Migration file name -> the SQLAgent record the gates accepted for it."""
    rollback: RollbackOutcome = field(default_factory=lambda: RollbackOutcome(triggered=False))
    hardening: HardeningOutcome = field(default_factory=HardeningOutcome)
    status: Status = "failed"
    exit_code: int = 1
    error: OrchestratorError | None = None
    cause: OrchestratorError | None = None
    """The failure a rollback answered (its step is data), kept when the rollback's error replaces `error`."""
    traffic_moved: bool = False
    url: str | None = None
    step: str | None = None
    """The last pipeline position recorded (`_at`)."""
    released: str | None = None
    """The release this run made live, when not the version input (a manual rollback's target)."""
    extras: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    def __init__(self, request: Request, platform: Platform, env: Mapping[str, str], log: RunLog) -> None:
        self.request = request
        self.config = request.config
        self.inputs = request.inputs
        self.platform = platform
        self.env = env
        self.log = log
        self.dsn = self._secret(self.config.credentials.db_connection_env_var)
        self.state = RunState(deployment_id=str(uuid.uuid4()), started_at=utc_now(), started=time.monotonic())
        self.checks = ReleaseChecks(self.config, dsn=self.dsn)
        ledger_dsn = self._secret(self.config.ledger.dsn_env_var) or self.dsn
        schema = self.config.ledger.schema
        enabled = self.config.ledger.enabled
        self.ledger = ledger.open_ledger(ledger_dsn, self.config.ledger, log, schema=schema) if enabled else None
        self.hardening = Hardening(self.config, ledger_dsn, self.inputs.workspace, env, log, schema=schema)
        self.run_url = notify.run_url(env)
        self.github = GitHubUpdates(GitHubClient.from_env(env, self.inputs.github_token, log_to=log), log)
        self.tracked: TrackedDeployment | None = None
        self.modules: tuple[odoo.OdooModule, ...] = ()
        self.ledger_dsn = ledger_dsn
        self._held = ExitStack()
        if self.ledger is not None:
            self._held.callback(self.ledger.close)
        self.hooks: PhaseHooks | None = None
        self._scripts: tuple[migration_scripts.MigrationScript, ...] | None = None

    def _secret(self, name: str | None) -> Secret | None:
        value = self.env.get(name) if name else None
        return Secret(value, name or "secret") if value else None

    # --- the sequence ------------------------------------------------------------------------

    def run(self) -> Result:
        mode = self.inputs.mode
        self.log.info(
            f"deployment {self.state.deployment_id}: {mode} {self.inputs.version} "
            f"({self.config.deployment.strategy} on {self.config.deployment.platform})"
        )
        unlocked: LockError | None = None
        if self.ledger and self.ledger_dsn and mode != "plan":
            # Held until the process ends: while it is, no recovery takes this run for a dead one. Without
            # it the run writes no `in_progress` row and touches nothing: such a row would look crashed.
            try:
                self._held.enter_context(hold_run_lock(self.ledger_dsn, self.state.deployment_id))
            except LockError as exc:
                unlocked = exc
            else:
                self.ledger.start(self.state.deployment_id, self.request, run_url=self.run_url)
        with self._held, on_signals() as cancellation:
            try:
                if unlocked is not None:
                    raise unlocked
                if mode == "rollback":
                    self._manual_rollback()
                elif mode == "recover":
                    self._recover()
                elif mode == "preview":
                    self._preview()
                elif mode == "preview-teardown":
                    self._teardown()
                elif mode == "delete":
                    self._delete()
                else:
                    self._deploy(plan_only=mode == "plan")
            except OrchestratorError as exc:
                self._fail(exc)
            except Exception as exc:  # still harden and record: a lost run is worse than a late traceback
                self._fail(_unexpected(exc, self.log))
            except Cancelled as stop:
                cancellation.armed = False
                self._cancelled(stop)
                self.hardening.close()
                return self._result()
            cancellation.armed = False
            self._platform_outputs()
            self._harden()
            if mode != "plan" and self.hardening.report is None:
                # Earlier runs' pairs go out after this run's own work (a failure's emit sends them with its
                # own), so an agentbench that is down never delays a deploy or a rollback.
                self.hardening.deliver_pending()
            result = self._result()
            with self.log.phase("Record"):
                crash_points.reach("during-record")
                self._record(result)
        self.hardening.close()
        return result

    def _lock(self, target: str) -> None:
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
                f"{self.config.environment}/{target}",
                wait_seconds=self.config.deploy_lock.wait_seconds,
                deployment_id=self.state.deployment_id,
            )
        )
        if target == self._target() and self.ledger is not None:
            self._reconcile()
        if self.ledger is not None:
            self._finish_deletes()

    def _reconcile(self) -> None:
        """Before touching the target: recover from runs on it that died (orchestrator/recovery/)."""
        report: RecoveryReport | None = None
        try:
            report = self._reconciled()
        except RecoveryError as exc:
            report = exc.report
            raise
        finally:
            if report is not None:
                self.state.extras["recovery"] = report.to_dict()
                self.state.migrations.extend(report.undone)

    def _reconciled(self) -> RecoveryReport | None:
        assert self.ledger_dsn is not None
        return reconcile(
            RecoveryContext(
                deployment_id=self.state.deployment_id,
                config=self.config,
                platform=self.platform,
                checks=self.checks,
                ledger_dsn=self.ledger_dsn,
                dsn=self.dsn,
                scripts=self._migration_scripts(),
                installed_by=self.env.get("GITHUB_ACTOR") or "deploy-orchestrator",
                hardening=self.hardening,
                log=self.log,
                deployments_after=lambda version: (
                    self.ledger.deployments_after(version, self.config.environment) if self.ledger else None
                ),
                validated_digests=lambda deployment_id: (
                    self.ledger.migration_digests(deployment_id) if self.ledger else None
                ),
                undo_provenance=self._undo_provenance,
                run_url=self.run_url,
            )
        )

    def _finish_deletes(self) -> None:
        """Deletes on this platform whose runs died: finished or reported (recovery/deletes.py)."""
        assert self.ledger_dsn is not None
        finished = finish_deletes(
            self.ledger_dsn,
            schema=self.config.ledger.schema,
            environment=self.config.environment,
            platform_name=self.config.deployment.platform,
            platform=self.platform,
            deployment_id=self.state.deployment_id,
            log=self.log,
        )
        if finished:
            self.state.extras["recovered_deletes"] = [f.to_dict() for f in finished]

    def _recover(self) -> None:
        """mode recover: only the recovery, then say what serves."""
        self._lock(self._target())
        live = self.platform.live()
        self.state.previous = live
        self.state.released = live.version if live else NO_VERSION
        if "recovery" not in self.state.extras:
            self.log.info("recover: no run on this target died before finishing; nothing to do")
        self.state.status, self.state.exit_code = "success", 0

    def _target(self) -> str:
        """Production's deploy-lock key, as the platform's descriptor names it."""
        return registry.descriptor(self.config.deployment.platform).lock_key(self.config.deployment)

    def _checkpoint(self, **facts: Any) -> None:
        """What a recovery of this run would need, should it die (recovery/crashed.py)."""
        if self.ledger is not None:
            crashed_rows.note(self.ledger_dsn, self.state.deployment_id, schema=self.config.ledger.schema, **facts)

    def _cancelled(self, stop: Cancelled) -> None:
        """SIGINT/SIGTERM: traffic back if this run moved it; the rest is left to recovery (recovery/cancel.py)."""
        step = self.state.step
        outcome = cancel_rollout(self.platform, self.state.previous, step)
        message = (
            f"{stop} during step {step or 'start'}: {outcome.note}; the schema, the new release and this run's "
            "ledger row are left to recovery (the next run, or `deploy-orchestrator recover`)"
        )
        self.log.error(message)
        self.state.error = OrchestratorError(message, step="cancelled")
        self.state.status, self.state.exit_code = "failed", 1
        if step != "verified":
            self._at("cancelled")
        self.state.extras["cancelled"] = {
            "signal": stop.signal_name,
            "step": step,
            "traffic_returned_to": outcome.traffic_returned_to,
        }

    def _at(self, step: str) -> None:
        """Record the pipeline position, so a crashed run shows where it stopped."""
        self.state.step = step
        if self.ledger and self.inputs.mode != "plan":
            self.ledger.step(self.state.deployment_id, step)

    def _look_at_what_serves(self) -> None:
        """What served before this run, so a refused or failed run reports it too. Read-only; asked again
        under the deploy lock, which is the answer the rollout trusts."""
        try:
            self.state.previous = self.platform.live()
        except OrchestratorError as exc:
            self.log.warn(f"could not ask {self.config.deployment.platform} what serves now: {exc}")

    def _migration_scripts(self) -> tuple[migration_scripts.MigrationScript, ...]:
        """The migration files, read once a run: the bytes the gates digest are the bytes the runner runs."""
        if self._scripts is None:
            self._scripts = migration_scripts.discover(self.config.artifacts.migrations, self.inputs.workspace)
        return self._scripts

    def _pass_gates(self) -> gates.GateReport:
        """Digest the artifacts and hold them against the verdicts. Raises GateError (or ConfigError)."""
        self._at("gates")
        try:
            read = {script.path: script.checksum for script in self._migration_scripts()}
        except ConfigError:
            read = {}  # digesting names the problem with its own field, as before; the runner's read refuses later
        digests = artifact_digests.digest_artifacts(
            self.config.artifacts,
            self.inputs.workspace,
            image=self._image(),
            log=self.log,
            env=self.env,
            component_images=artifact_digests.component_image_vars(self.env, self.config.deployment.platform),
            source_commit=self._source_commit(),
            read=read,
        )
        self.state.extras["artifacts"] = digests.to_dict()
        self.modules = odoo.read_modules(self.config.artifacts.odoo_modules, self.inputs.workspace)
        if self.modules:
            self.state.extras["odoo_modules"] = [m.to_dict() for m in self.modules]
        report = gates.check_gates(
            self.request.validation_run_id, digests, gates.open_source(self.config, self.env), self.config.gates
        )
        for line in report.describe():
            self.log.info(line if line.startswith("gate ") else f"gate: {line}")  # never "gate: gate ..."
        self.state.extras["gates"] = report.to_dict()
        self.state.provenance.update(report.provenance.files)
        return report

    def _source_commit(self) -> str | None:
        """The commit this run validated, which components built from the repository's source must be
        built from (artifacts.py); None on a platform that runs images and files only."""
        if not registry.descriptor(self.config.deployment.platform).builds_from_source:
            return None
        return validated_commit(self.env, preview=self.inputs.mode == "preview")

    def _deploy(self, *, plan_only: bool) -> None:
        self.hooks = self._phase_hooks()
        self._look_at_what_serves()
        with self.log.phase("Gates"):
            report = self._pass_gates()
        if not plan_only:
            if isinstance(self.platform, PinsArtifacts):
                self.platform.pin_artifacts(self.inputs.version, report.digests)
            self._lock(self._target())
            crash_points.reach("after-gates")
            self._track(production=True, environment=self.config.environment)
        self.state.previous = self.platform.live()
        previous = self.state.previous.version if self.state.previous else None
        if not plan_only:
            self._checkpoint(digests=self.state.extras.get("artifacts"), previous=previous or NO_VERSION)
        rollout = plan_rollout(
            self.config, platform=self.platform, old=previous, new=self.inputs.version, image=self._image()
        )
        scripts = self._migration_scripts()
        changed_modules = odoo.plan_upgrade(self.modules, report.digests, self._previous_module_digests())

        with self._migration_session(scripts, read_only=plan_only) as runner:
            migration_plan = runner.plan(scripts, report.approved_migrations) if runner else None
            plan_lines = migration_plan.describe() if migration_plan else ["no migrations"]
            sqlagent_lines = planned_lines(report.digests)
            self.state.extras["plan"] = {
                "rollout": rollout.describe(),
                "migrations": plan_lines,
                "sqlagent": sqlagent_lines,
                "odoo_upgrade": list(changed_modules),
            }
            for line in [*plan_lines, *sqlagent_lines, *rollout.describe()]:
                self.log.info(f"plan: {line}")
            if plan_only:
                self.state.status, self.state.exit_code = "success", 0
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
                    outcome = execute(
                        rollout, self.platform, self.checks, self.log, hooks=self.hooks, meter=self._meter()
                    )
                self._canary_record(outcome)
                self.state.probes.extend(outcome.probes)
                self.state.traffic_moved = outcome.traffic_moved
            except Exception as raised:
                exc = raised if isinstance(raised, OrchestratorError) else _unexpected(raised, self.log)
                if isinstance(exc, MigrationError):
                    applied = [r for r in exc.results if r.success]
                # An error we did not foresee may have struck mid-switch: sending traffic back is
                # idempotent, so assume it moved.
                traffic_moved = rollout_began and exc is not raised
                if isinstance(exc, RolloutFailure):
                    self._canary_record(exc.outcome)
                    self.state.probes.extend(exc.outcome.probes)
                    traffic_moved = exc.outcome.traffic_moved
                self.state.traffic_moved = traffic_moved
                self._roll_back_after(exc, runner, applied, traffic_moved)
                return
        self._at("verified")
        try:
            keep = self.config.rollback.keep_previous_versions
            retired = self.platform.retire(keep) if isinstance(self.platform, Retirement) else []
        except OrchestratorError as exc:
            # The new release is live and verified; old ones left running cost resources, not users.
            self.log.warn(f"retiring releases beyond keep_previous_versions failed: {exc}")
            retired = []
        if retired:
            self.log.info(f"retired releases beyond keep_previous_versions: {', '.join(retired)}")
        self.state.status, self.state.exit_code = "success", 0
        where = (
            f"at {self.platform.live_url()}" if answers_on_a_url(self.platform) else "(no URL: workers and jobs only)"
        )
        self.log.info(f"{self.inputs.version} is live {where}")

    def _phase_hooks(self) -> PhaseHooks:
        """The canary's phase webhooks; a secret variable they name but is unset is a ConfigError now."""
        context = {"deployment_id": self.state.deployment_id, "repository": self.env.get("GITHUB_REPOSITORY")}
        return PhaseHooks(self.config.deployment.canary_webhooks, self.env, self.log, context=context)

    def _meter(self) -> TrafficMeter | None:
        """Where a canary's counters come from when not from the platform's own data plane."""
        source = self.config.deployment.canary_prometheus
        return PrometheusMeter(source) if source is not None else None

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

    @contextmanager
    def _migration_session(
        self, scripts: Sequence[migration_scripts.MigrationScript], *, read_only: bool
    ) -> Iterator[MigrationRunner | None]:
        if not scripts:
            yield None
            return
        if self.dsn is None:
            raise MigrationError(
                f"migrations are listed but ${self.config.credentials.db_connection_env_var} is not set; "
                "export the database DSN under that name (credentials.db_connection_env_var)"
            )
        session = MigrationRunner(
            self.dsn,
            self.config.migrations,
            deployment_id=self.state.deployment_id,
            installed_by=self.env.get("GITHUB_ACTOR") or "deploy-orchestrator",
            read_only=read_only,
        )
        with session:
            yield session

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
        returned_to = cause.returned_to if isinstance(cause, DeployError) else None
        if returned_to is not None:
            # It went live, so "never went live" would be untrue: the platform already put traffic
            # back, and the rollback below undoes the schema and verifies the release it returned to.
            self.log.error(
                f"{reason}; {self.inputs.version} went live and {self.config.deployment.platform} "
                f"returned traffic to {returned_to} at once"
            )
        elif not isinstance(self.platform, TrafficRouter) and not traffic_moved and not applied:
            # The platform kept the old release serving (its deployment never went live) and no
            # migration ran: there is nothing to roll back, and claiming one would be untrue.
            serving = self.state.previous
            with suppress(OrchestratorError):
                serving = self.platform.live()
            self.log.error(
                f"{reason}; {self.inputs.version} never went live, so nothing was rolled back: "
                f"{serving.version if serving else 'no release'} is still serving"
            )
            self.state.status, self.state.exit_code = "failed", 1
            return
        if not self.config.rollback.auto_rollback_on_failure:
            undone = "nothing else" if returned_to else "nothing"
            self.log.error(f"{reason} (auto_rollback_on_failure is false: {undone} undone)")
            self.state.status, self.state.exit_code = "failed", 1
            return
        self._at("rollback")
        with self.log.phase("Rollback"):
            report = self._roll_back(reason, runner, applied, traffic_moved)
        self._absorb(report)
        if self.hooks:
            back_to = report.outcome.previous_version
            self.hooks.phase("rollback", {"version": self.inputs.version, "previous": back_to, "reason": reason})
            self.state.extras["webhooks"] = self.hooks.to_dict()

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
        back_to = report.outcome.previous_version
        self.state.probes.extend(p.during("rollback re-check", back_to) for p in report.probes)
        self.state.migrations.extend(report.undone)
        if report.error is None:
            self.state.status = "rolled_back"
        else:
            self.state.status = "failed"
            self.state.error = report.error
        self.state.exit_code = 1

    def _manual_rollback(self) -> None:
        """mode rollback: back to a good release (rollback/manual.py), past every deploy since it."""
        self._lock(self._target())
        releases = self.platform.releases()
        live = self.platform.live()
        self.state.previous = live
        target = good_releases.rollback_target(self.inputs.rollback_to, releases, live, self._judgement())
        self.state.released = target.version
        self._checkpoint(release=target.version, previous=live.version if live else NO_VERSION)
        self._at("rollback")
        self.log.info(f"manual rollback from {live.version if live else NO_VERSION} to {target.version}")
        scripts = self._migration_scripts()
        with self._migration_session(scripts, read_only=False) as runner:
            applied = manual_rollback.migrations_since(
                target.version,
                runner=runner,
                scripts=scripts,
                history=self.ledger,
                environment=self.config.environment,
                undo_provenance=self._undo_provenance,
                log=self.log,
            )
            report = manual_rollback.roll_back_to(
                target,
                platform=self.platform,
                runner=runner,
                applied=applied,
                scripts=scripts,
                checks=self.checks,
                budget_seconds=self.config.rollback.max_rollback_duration_seconds,
                log=self.log,
            )
        self.state.probes.extend(p.during("rollback re-check", target.version) for p in report.probes)
        self.state.migrations.extend(report.undone)
        self.state.rollback = report.outcome
        if report.error is not None:
            raise report.error
        self._at("verified")
        self.state.status, self.state.exit_code = "rolled_back", 0

    def _judgement(self) -> good_releases.ReleaseJudgement | None:
        """The ledger's view of which releases are good (None: no ledger, the platform's list decides)."""
        return good_releases.judgement_if_known(
            self.ledger_dsn if self.ledger is not None else None,
            schema=self.config.ledger.schema,
            environment=self.config.environment,
            platform=self.config.deployment.platform,
            exclude=self.state.deployment_id,
            log=self.log,
        )

    def _undo_provenance(self, undos: Mapping[str, str]) -> Mapping[str, MigrationProvenance]:
        """The SQLAgent record of each undo script that would run (file name -> sha256); GateError if one lacks it."""
        found = gates.check_undo_provenance(undos, gates.open_source(self.config, self.env)) if undos else {}
        self.state.provenance.update(found)
        return found

    def _preview(self) -> None:
        platform = self.platform  # built by the CLI for the pull request's target
        target = preview_target(self.inputs, self.env, run_url=self.run_url)
        report = self._pass_gates()
        if isinstance(self.platform, PinsArtifacts):
            self.platform.pin_artifacts(self.inputs.version, report.digests)
        self._lock(f"{self._target()}/pr-{target.pr_number}")
        analysis = self.config.verification.before_switch
        outcome = run_preview(
            platform, target, lambda url: self.checks.release(url, analysis=analysis), self.github, self.log
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
        self.state.status, self.state.exit_code = "success", 0

    def _teardown(self) -> None:
        platform = self.platform  # built by the CLI for the pull request's target
        pr_number = self.inputs.pr_number
        repository = self.inputs.repository or self.env.get("GITHUB_REPOSITORY")
        if pr_number is None or repository is None:
            raise ConfigError("pr-number and GITHUB_REPOSITORY are needed to find the preview to remove")
        self._lock(f"{self._target()}/pr-{pr_number}")
        outcome = run_teardown(platform, pr_number, self.github, self.log)
        self.state.extras["preview"] = {"pr_number": pr_number, "deleted": outcome.deleted}
        if outcome.status != "success":
            raise DeployError(outcome.error or "the preview teardown failed", operation="preview-teardown")
        self.state.status, self.state.exit_code = "success", 0

    def _delete(self) -> None:
        """mode delete: another app removed by id or name (`app_delete.py`)."""
        self._lock(f"{self._target()}/delete/{self.inputs.app_id or self.inputs.app_name}")
        self._at("delete")
        record = target_recorder(
            self.ledger_dsn if self.ledger else None, self.state.deployment_id, schema=self.config.ledger.schema
        )
        outcome = run_delete(self.platform, self.inputs, self.config.deployment.platform, self.log, record=record)
        self.state.extras["deleted"] = outcome.to_dict()
        self.state.status, self.state.exit_code = "success", 0

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
            said = str(exc).removeprefix(f"gate {exc.gate}: ")  # the gate's own words already name it
            self.log.error(f"refused by the {exc.gate} gate: {said}")
        else:
            self.log.error(f"{exc.step} failed: {str(exc).removeprefix(f'{exc.step}: ')}")

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

    def _platform_outputs(self) -> None:
        """What the platform reports beyond the contract (App Platform's app and logs), printed
        in groups and kept for the Action's outputs."""
        found = platform_outputs.collect(self.platform)
        if found is None:
            return
        platform_outputs.print_groups(found)
        self.state.extras["platform_outputs"] = found.to_dict()

    def _result(self) -> Result:
        s = self.state
        error = s.error
        extras = dict(s.extras)
        if error is not None and isinstance(error, GateError):
            extras["refused"] = {"gate": error.gate, "reason": str(error), **error.facts}
        return Result(
            deployment_id=s.deployment_id,
            validation_run_id=self.request.validation_run_id or "",
            deployed_at=s.started_at,
            status=s.status,
            deployment_details=DeploymentDetails(
                strategy=self.config.deployment.strategy,
                platform=self.config.deployment.platform,
                previous_version=s.previous.version if s.previous else NO_VERSION,
                new_version=s.released or self.inputs.version,
                duration_seconds=round(time.monotonic() - s.started, 3),
            ),
            health_checks=tuple(s.probes),
            migrations_applied=attach_provenance(s.migrations, s.provenance),
            rollback=s.rollback,
            hardening=s.hardening,
            logs=self.log.entries,
            mode=self.inputs.mode,
            url=self._url(),
            exit_code=s.exit_code,
            error=str(error) if error else None,
            failed_step=error.step if error else None,
            extras=tuple(sorted(extras.items())),
        )

    def _record(self, result: Result) -> None:
        """Ledger, lineage, metrics, notification, paging: each logged on failure, none fatal."""
        if self.inputs.mode == "plan":
            return
        environment = self.config.environment
        # Told before the row is finished: a crash in between leaves the row to recovery, whose run
        # is announced in turn, so no outcome goes untold (at worst a team hears twice).
        notifier = notify.Notifier(self.config.notifications, self.env, log=self.log)
        notifier.announce(result, environment=environment)
        if isinstance(self.state.error, RollbackError):
            notifier.page(result, str(self.state.error))
        crash_points.reach("after-notify")
        if self.ledger:
            self.ledger.finish(result, run_url=self.run_url)
        metrics.record_run(result, self.config.metrics, self.inputs.workspace, environment=environment, log=self.log)
        if self.tracked is not None:
            self.tracked.finish(result.status, result.url, self.run_url, result.error or f"{result.mode} succeeded")

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


def _unexpected(error: Exception, log: RunLog) -> OrchestratorError:
    """A bug or an untranslated driver error after a side effect: still roll back, with the traceback logged."""
    log.error("unexpected error:\n" + "".join(traceback.format_exception(error)))
    wrapped = DeployError(f"unexpected {type(error).__name__}: {error}", operation="deploy")
    wrapped.__cause__ = error
    return wrapped
