"""What one run has done so far, and the Result built from it at the end."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from orchestrator.contract import (
    DeploymentDetails,
    HardeningOutcome,
    HealthProbe,
    LogEntry,
    MigrationProvenance,
    MigrationResult,
    Request,
    Result,
    RollbackOutcome,
    Status,
)
from orchestrator.errors import DeployError, GateError, OrchestratorError
from orchestrator.platforms.base import Release
from orchestrator.runlog import RunLog
from orchestrator.sqlagent import attach_provenance

__all__ = ["NO_VERSION", "RunState", "result_of", "unexpected"]

NO_VERSION = "none"


@dataclass
class RunState:
    """Everything the result, the ledger and the preference pair are built from."""

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
    released: str | None = None
    """The release this run made live, when not the version input (a manual rollback's target)."""
    extras: dict[str, Any] = field(default_factory=dict)

    def succeed(self, exit_code: int = 0, status: Status = "success") -> None:
        self.status, self.exit_code = status, exit_code


def result_of(request: Request, state: RunState, logs: tuple[LogEntry, ...], url: str | None) -> Result:
    error = state.error
    extras = dict(state.extras)
    if error is not None and isinstance(error, GateError):
        extras["refused"] = {"gate": error.gate, "reason": str(error), **error.facts}
    config = request.config
    return Result(
        deployment_id=state.deployment_id,
        validation_run_id=request.validation_run_id or "",
        deployed_at=state.started_at,
        status=state.status,
        deployment_details=DeploymentDetails(
            strategy=config.deployment.strategy,
            platform=config.deployment.platform,
            previous_version=state.previous.version if state.previous else NO_VERSION,
            new_version=state.released or request.inputs.version,
            duration_seconds=round(time.monotonic() - state.started, 3),
        ),
        health_checks=tuple(state.probes),
        migrations_applied=attach_provenance(state.migrations, state.provenance),
        rollback=state.rollback,
        hardening=state.hardening,
        logs=logs,
        mode=request.inputs.mode,
        url=url,
        exit_code=state.exit_code,
        error=str(error) if error else None,
        failed_step=error.step if error else None,
        extras=tuple(sorted(extras.items())),
    )


def unexpected(error: Exception, log: RunLog) -> OrchestratorError:
    """A bug or an untranslated driver error after a side effect: still roll back, with the traceback logged."""
    log.error("unexpected error:\n" + "".join(traceback.format_exception(error)))
    wrapped = DeployError(f"unexpected {type(error).__name__}: {error}", operation="deploy")
    wrapped.__cause__ = error
    return wrapped
