"""What one run has done so far, and the result assembled from it.

The pipeline fills a `RunState` step by step; the result, the ledger row and the hardening pair
are all built from it (the pair through `hardening.pairs.RunFacts`, structurally).
"""

from __future__ import annotations

import time
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
from orchestrator.errors import GateError, OrchestratorError
from orchestrator.platforms.base import Release
from orchestrator.sqlagent import attach_provenance

__all__ = ["NO_VERSION", "RunState", "result_of"]

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
    """The last pipeline position recorded."""
    released: str | None = None
    """The release this run made live, when not the version input (a manual rollback's target)."""
    extras: dict[str, Any] = field(default_factory=dict)

    def succeeded(self, status: Status = "success") -> None:
        self.status, self.exit_code = status, 0

    def failed(self) -> None:
        self.status, self.exit_code = "failed", 1


def result_of(request: Request, state: RunState, *, url: str | None, logs: tuple[LogEntry, ...]) -> Result:
    """The run's result (the seed contract's `Result`), as of now."""
    s = state
    error = s.error
    extras = dict(s.extras)
    if error is not None and isinstance(error, GateError):
        extras["refused"] = {"gate": error.gate, "reason": str(error), **error.facts}
    config = request.config
    return Result(
        deployment_id=s.deployment_id,
        validation_run_id=request.validation_run_id or "",
        deployed_at=s.started_at,
        status=s.status,
        deployment_details=DeploymentDetails(
            strategy=config.deployment.strategy,
            platform=config.deployment.platform,
            previous_version=s.previous.version if s.previous else NO_VERSION,
            new_version=s.released or request.inputs.version,
            duration_seconds=round(time.monotonic() - s.started, 3),
        ),
        health_checks=tuple(s.probes),
        migrations_applied=attach_provenance(s.migrations, s.provenance),
        rollback=s.rollback,
        hardening=s.hardening,
        logs=logs,
        mode=request.inputs.mode,
        url=url,
        exit_code=s.exit_code,
        error=str(error) if error else None,
        failed_step=error.step if error else None,
        extras=tuple(sorted(extras.items())),
    )
