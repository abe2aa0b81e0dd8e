"""The steps every mode of a run shares: the deploy lock (and the recovery it runs under), the
recorded position, the crash checkpoint, the gates, the migration files, the ledger's judgement
of releases and the GitHub Deployment. A mode (`orchestrator/modes/`) is an order of these steps.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from contextlib import ExitStack
from typing import Any

from orchestrator import artifacts as artifact_digests
from orchestrator import gates, good_releases, odoo
from orchestrator.composition import Collaborators
from orchestrator.contract import MigrationProvenance, Request
from orchestrator.deploy_lock import hold_deploy_lock
from orchestrator.errors import ConfigError, DeployError, OrchestratorError
from orchestrator.github_event import validated_commit
from orchestrator.github_updates import TrackedDeployment, track_deployment
from orchestrator.migrations import scripts as migration_scripts
from orchestrator.platforms import registry
from orchestrator.platforms.base import Platform
from orchestrator.recovery import crashed as crashed_rows
from orchestrator.recovery.deletes import finish_deletes
from orchestrator.recovery.reconcile import RecoveryContext, RecoveryError, RecoveryReport, reconcile
from orchestrator.run_state import RunState
from orchestrator.runlog import RunLog

__all__ = ["RunSteps", "unexpected"]


class RunSteps:
    """One run's shared steps, over its request, platform, collaborators and state."""

    def __init__(
        self, request: Request, platform: Platform, parts: Collaborators, state: RunState, held: ExitStack
    ) -> None:
        self.request = request
        self.config = request.config
        self.inputs = request.inputs
        self.platform = platform
        self.parts = parts
        self.state = state
        self.log = parts.log
        self.held = held
        """What the run holds until it is recorded (the run lock, the deploy lock)."""
        self.tracked: TrackedDeployment | None = None
        self.modules: tuple[odoo.OdooModule, ...] = ()
        self._scripts: tuple[migration_scripts.MigrationScript, ...] | None = None

    def production_key(self) -> str:
        """Production's deploy-lock key, as the platform's descriptor names it."""
        return registry.descriptor(self.config.deployment.platform).lock_key(self.config.deployment)

    def lock(self, target: str) -> None:
        """Hold the deploy lock for `target` until the run is recorded (see deploy_lock.py); on
        production, first recover from runs on it that died."""
        ledger_dsn = self.parts.ledger_dsn
        if ledger_dsn is None:
            self.log.warn(
                "no ledger database, so this deploy is not locked against others on the same target; "
                "use a workflow concurrency group"
            )
            return
        self.held.enter_context(
            hold_deploy_lock(
                ledger_dsn,
                f"{self.config.environment}/{target}",
                wait_seconds=self.config.deploy_lock.wait_seconds,
                deployment_id=self.state.deployment_id,
            )
        )
        if target == self.production_key() and self.parts.ledger is not None:
            self._reconcile()
        if self.parts.ledger is not None:
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
        parts, ledger = self.parts, self.parts.ledger
        assert parts.ledger_dsn is not None
        return reconcile(
            RecoveryContext(
                deployment_id=self.state.deployment_id,
                config=self.config,
                platform=self.platform,
                checks=parts.checks,
                ledger_dsn=parts.ledger_dsn,
                dsn=parts.dsn,
                scripts=self.migration_scripts(),
                installed_by=parts.actor,
                hardening=parts.hardening,
                log=self.log,
                deployments_after=lambda version: (
                    ledger.deployments_after(version, self.config.environment) if ledger else None
                ),
                validated_digests=lambda deployment_id: ledger.migration_digests(deployment_id) if ledger else None,
                undo_provenance=self.undo_provenance,
                run_url=parts.run_url,
            )
        )

    def _finish_deletes(self) -> None:
        """Deletes on this platform whose runs died: finished or reported (recovery/deletes.py)."""
        assert self.parts.ledger_dsn is not None
        finished = finish_deletes(
            self.parts.ledger_dsn,
            schema=self.config.ledger.schema,
            environment=self.config.environment,
            platform_name=self.config.deployment.platform,
            platform=self.platform,
            deployment_id=self.state.deployment_id,
            log=self.log,
        )
        if finished:
            self.state.extras["recovered_deletes"] = [f.to_dict() for f in finished]

    def at(self, step: str) -> None:
        """Record the pipeline position, so a crashed run shows where it stopped."""
        self.state.step = step
        if self.parts.ledger and self.inputs.mode != "plan":
            self.parts.ledger.step(self.state.deployment_id, step)

    def checkpoint(self, **facts: Any) -> None:
        """What a recovery of this run would need, should it die (recovery/crashed.py)."""
        if self.parts.ledger is not None:
            schema = self.config.ledger.schema
            crashed_rows.note(self.parts.ledger_dsn, self.state.deployment_id, schema=schema, **facts)

    def look_at_what_serves(self) -> None:
        """What served before this run, so a refused or failed run reports it too. Read-only; asked again
        under the deploy lock, which is the answer the rollout trusts."""
        try:
            self.state.previous = self.platform.live()
        except OrchestratorError as exc:
            self.log.warn(f"could not ask {self.config.deployment.platform} what serves now: {exc}")

    def migration_scripts(self) -> tuple[migration_scripts.MigrationScript, ...]:
        """The migration files, read once a run: the bytes the gates digest are the bytes the runner runs."""
        if self._scripts is None:
            self._scripts = migration_scripts.discover(self.config.artifacts.migrations, self.inputs.workspace)
        return self._scripts

    def pass_gates(self) -> gates.GateReport:
        """Digest the artifacts and hold them against the verdicts. Raises GateError (or ConfigError)."""
        self.at("gates")
        env = self.parts.env
        try:
            read = {script.path: script.checksum for script in self.migration_scripts()}
        except ConfigError:
            read = {}  # digesting names the problem with its own field, as before; the runner's read refuses later
        digests = artifact_digests.digest_artifacts(
            self.config.artifacts,
            self.inputs.workspace,
            image=self.image(),
            log=self.log,
            env=env,
            component_images=artifact_digests.component_image_vars(env, self.config.deployment.platform),
            source_commit=self._source_commit(),
            read=read,
        )
        self.state.extras["artifacts"] = digests.to_dict()
        self.modules = odoo.read_modules(self.config.artifacts.odoo_modules, self.inputs.workspace)
        if self.modules:
            self.state.extras["odoo_modules"] = [m.to_dict() for m in self.modules]
        report = gates.check_gates(self.request.validation_run_id, digests, self.parts.verdicts(), self.config.gates)
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
        return validated_commit(self.parts.env, preview=self.inputs.mode == "preview")

    def image(self) -> str | None:
        return self.inputs.image or self.config.artifacts.docker_image

    def judgement(self) -> good_releases.ReleaseJudgement | None:
        """The ledger's view of which releases are good (None: no ledger, the platform's list decides)."""
        return good_releases.judgement_if_known(
            self.parts.ledger_dsn if self.parts.ledger is not None else None,
            schema=self.config.ledger.schema,
            environment=self.config.environment,
            platform=self.config.deployment.platform,
            exclude=self.state.deployment_id,
            log=self.log,
        )

    def undo_provenance(self, undos: Mapping[str, str]) -> Mapping[str, MigrationProvenance]:
        """The SQLAgent record of each undo script that would run (file name -> sha256); GateError if one lacks it."""
        found = gates.check_undo_provenance(undos, self.parts.verdicts()) if undos else {}
        self.state.provenance.update(found)
        return found

    def track(self, *, production: bool, environment: str) -> None:
        """A GitHub Deployment for this run (never fatal; skipped without a token)."""
        self.tracked = track_deployment(
            self.parts.github,
            ref=self.parts.env.get("GITHUB_SHA") or self.inputs.version,
            environment=environment,
            production=production,
            description=f"deploy {self.inputs.version}",
            payload={"version": self.inputs.version, "deployment_id": self.state.deployment_id},
            log_url=self.parts.run_url,
            log_to=self.log,
        )


def unexpected(error: Exception, log: RunLog) -> OrchestratorError:
    """A bug or an untranslated driver error after a side effect: still roll back, with the traceback logged."""
    log.error("unexpected error:\n" + "".join(traceback.format_exception(error)))
    wrapped = DeployError(f"unexpected {type(error).__name__}: {error}", operation="deploy")
    wrapped.__cause__ = error
    return wrapped
