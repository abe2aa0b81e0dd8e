"""The result of a run (output contract).

The types mirror the seed's `DeploymentOrchestratorOutput` field for field and serialise with
`Result.to_dict()` into what `schema/deploy-result.schema.json` validates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DeploymentDetails",
    "HardeningOutcome",
    "HealthProbe",
    "LogEntry",
    "LogLevel",
    "MigrationProvenance",
    "MigrationResult",
    "Result",
    "RollbackOutcome",
    "Status",
]

Status = Literal["success", "failed", "rolled_back"]
LogLevel = Literal["info", "warn", "error"]


@dataclass(frozen=True, slots=True)
class HealthProbe:
    endpoint: str
    status_code: int
    response_time_ms: float
    passed: bool
    timestamp: str
    detail: str | None = None
    release: str | None = None
    """The release this probe checked (a canary step's public route: the new release's label)."""
    phase: str | None = None
    """When in the run: `pre-switch`, `canary 10%`, `verification`, `rollback re-check`, `preview`."""

    def during(self, phase: str, release: str | None) -> HealthProbe:
        """This probe labelled with where in the run it was taken (labels already set are kept)."""
        return dataclasses.replace(self, phase=self.phase or phase, release=self.release or release)


@dataclass(frozen=True, slots=True)
class MigrationProvenance:
    """Who produced a migration file: the SQLAgent's record that vouches for exactly its sha256."""

    sha256: str
    sqlagent_run_id: str
    agent_id: str
    recorded_at: str
    record_id: str


@dataclass(frozen=True, slots=True)
class MigrationResult:
    version: str
    filename: str
    duration_ms: float
    success: bool
    direction: Literal["up", "down"] = "up"
    error: str | None = None
    provenance: MigrationProvenance | None = None
    """An additive field: the SQLAgent record of the file that ran (the V file up, the U file down)."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    level: LogLevel
    message: str
    timestamp: str


@dataclass(frozen=True, slots=True)
class DeploymentDetails:
    strategy: str
    platform: str
    previous_version: str
    new_version: str
    duration_seconds: float


@dataclass(frozen=True, slots=True)
class RollbackOutcome:
    triggered: bool
    reason: str | None = None
    previous_version: str | None = None
    duration_seconds: float | None = None
    succeeded: bool | None = None


@dataclass(frozen=True, slots=True)
class HardeningOutcome:
    dpo_pairs_generated: int = 0
    agentbench_submission_id: str | None = None
    delivered: int = 0
    queued: int = 0
    fallback_file: str | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """The seed's DeploymentOrchestratorOutput plus our additive top-level fields."""

    deployment_id: str
    validation_run_id: str
    deployed_at: str
    status: Status
    deployment_details: DeploymentDetails
    health_checks: tuple[HealthProbe, ...]
    migrations_applied: tuple[MigrationResult, ...]
    rollback: RollbackOutcome
    hardening: HardeningOutcome
    logs: tuple[LogEntry, ...]
    mode: str = "deploy"
    url: str | None = None
    exit_code: int = 0
    error: str | None = None
    failed_step: str | None = None
    extras: tuple[tuple[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        # The extras are plain data already, and can be large (thousands of digests): not copied field by field.
        data: dict[str, Any] = _strip_none(dataclasses.asdict(dataclasses.replace(self, extras=())))
        data.pop("extras", None)
        for key, value in self.extras:
            data[key] = value
        return data


def _strip_none(value: Any) -> Any:
    """Drop None-valued keys so optional seed fields are absent rather than null."""
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_strip_none(v) for v in value]
    return value
