"""The ordered steps of one run. The only module that knows the sequence:

    run lock + ledger start → the mode (modes/: deploy or plan, rollback, recover, preview,
    preview-teardown, delete) → platform outputs → hardening → earlier pairs delivered → record

A deploy is: digests → gates → deploy lock (recovery first) → plan → migrations → Odoo upgrade →
rollout (start, pre-switch health, switch, verification) → success | rollback (modes/deploy.py).
A gate refusal stops before anything is touched. A failure after a side effect triggers the
rollback, which undoes traffic and this run's migrations and re-checks the old release; if that
fails, on-call is paged. The collaborators come in built (`composition.py`); the pipeline builds
none of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack

from orchestrator import platform_outputs
from orchestrator.composition import Collaborators
from orchestrator.contract import Mode, Request, Result
from orchestrator.errors import GateError, LockError, OrchestratorError, RollbackError
from orchestrator.hardening import pairs as hardening_pairs
from orchestrator.modes import other_targets
from orchestrator.modes import rollback as rollback_modes
from orchestrator.modes.deploy import Deploy
from orchestrator.platforms.base import Platform
from orchestrator.recovery import crash_points
from orchestrator.recovery.cancel import Cancelled, cancel_rollout, on_signals
from orchestrator.recovery.liveness import hold_run_lock
from orchestrator.run_state import RunState, result_of
from orchestrator.run_steps import RunSteps, unexpected
from orchestrator.runlog import utc_now

__all__ = ["Pipeline", "RunState"]

MODES: Mapping[Mode, Callable[[RunSteps], None]] = {
    "deploy": lambda steps: Deploy(steps).run(plan_only=False),
    "plan": lambda steps: Deploy(steps).run(plan_only=True),
    "rollback": rollback_modes.manual_rollback,
    "recover": rollback_modes.recover,
    "preview": other_targets.preview,
    "preview-teardown": other_targets.preview_teardown,
    "delete": other_targets.delete,
}
"""Each mode of the Action's `mode` input, and the order of steps that carries it out."""


class Pipeline:
    def __init__(self, request: Request, platform: Platform, parts: Collaborators) -> None:
        self.request = request
        self.config = request.config
        self.inputs = request.inputs
        self.platform = platform
        self.parts = parts
        self.log = parts.log
        self.hardening = parts.hardening
        self.state = RunState(deployment_id=parts.deployment_id, started_at=utc_now(), started=time.monotonic())
        self._held = ExitStack()
        if parts.ledger is not None:
            self._held.callback(parts.ledger.close)
        self.steps = RunSteps(request, platform, parts, self.state, self._held)

    def run(self) -> Result:
        mode = self.inputs.mode
        self.log.info(
            f"deployment {self.state.deployment_id}: {mode} {self.inputs.version} "
            f"({self.config.deployment.strategy} on {self.config.deployment.platform})"
        )
        unlocked = self._start_record() if mode != "plan" else None
        with self._held, on_signals() as cancellation:
            try:
                if unlocked is not None:
                    raise unlocked
                MODES[mode](self.steps)
            except OrchestratorError as exc:
                self._fail(exc)
            except Exception as exc:  # still harden and record: a lost run is worse than a late traceback
                self._fail(unexpected(exc, self.log))
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

    def _start_record(self) -> LockError | None:
        """The run lock and this run's `in_progress` ledger row; the LockError to raise when the lock is held."""
        ledger, ledger_dsn = self.parts.ledger, self.parts.ledger_dsn
        if not ledger or not ledger_dsn:
            return None
        # Held until the process ends: while it is, no recovery takes this run for a dead one. Without
        # it the run writes no `in_progress` row and touches nothing: such a row would look crashed.
        try:
            self._held.enter_context(hold_run_lock(ledger_dsn, self.state.deployment_id))
        except LockError as exc:
            return exc
        ledger.start(self.state.deployment_id, self.request, run_url=self.parts.run_url)
        return None

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
        self.state.failed()
        if step != "verified":
            self.steps.at("cancelled")
        self.state.extras["cancelled"] = {
            "signal": stop.signal_name,
            "step": step,
            "traffic_returned_to": outcome.traffic_returned_to,
        }

    def _fail(self, exc: OrchestratorError) -> None:
        self.state.error = exc
        self.state.exit_code = exc.exit_code
        if not self.state.rollback.triggered or isinstance(exc, RollbackError):
            self.state.status = "failed"
        if isinstance(exc, GateError):
            said = str(exc).removeprefix(f"gate {exc.gate}: ")  # the gate's own words already name it
            self.log.error(f"refused by the {exc.gate} gate: {said}")
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

    def _platform_outputs(self) -> None:
        """What the platform reports beyond the contract (App Platform's app and logs), printed
        in groups and kept for the Action's outputs."""
        found = platform_outputs.collect(self.platform)
        if found is None:
            return
        platform_outputs.print_groups(found)
        self.state.extras["platform_outputs"] = found.to_dict()

    def _result(self) -> Result:
        return result_of(self.request, self.state, url=self._url(), logs=self.log.entries)

    def _record(self, result: Result) -> None:
        """Ledger, lineage, metrics, notification, paging: each logged on failure, none fatal."""
        if self.inputs.mode == "plan":
            return
        parts, environment = self.parts, self.config.environment
        # Told before the row is finished: a crash in between leaves the row to recovery, whose run
        # is announced in turn, so no outcome goes untold (at worst a team hears twice).
        parts.notifier.announce(result, environment=environment)
        if isinstance(self.state.error, RollbackError):
            parts.notifier.page(result, str(self.state.error))
        crash_points.reach("after-notify")
        if parts.ledger:
            parts.ledger.finish(result, run_url=parts.run_url, provenance=self.state.provenance)
        parts.record_metrics(result)
        tracked = self.steps.tracked
        if tracked is not None:
            tracked.finish(result.status, result.url, parts.run_url, result.error or f"{result.mode} succeeded")

    def _url(self) -> str | None:
        if self.state.url is not None:
            return self.state.url
        try:
            return self.platform.live_url()
        except OrchestratorError:
            return None
