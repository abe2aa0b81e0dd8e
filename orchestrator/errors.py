"""The one exception hierarchy.

    OrchestratorError                 exit 1 unless a subclass says otherwise
    ├── ConfigError                   exit 2: inputs or config rejected, nothing touched
    ├── GateError                     exit 3: a gate refused, nothing touched
    ├── MigrationError                a migration failed or was refused at run time
    ├── LockError                     another run holds the deploy or migration lock
    ├── DeployError                   a platform operation failed
    ├── HealthError                   a health check or verification failed
    └── RollbackError                 the rollback itself failed (on-call is paged)

Structured facts ride on the exception as attributes so the report and the
hardening pair can use them without parsing messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "ConfigError",
    "DeployError",
    "GateError",
    "HealthError",
    "LockError",
    "MigrationError",
    "OrchestratorError",
    "RollbackError",
]


class OrchestratorError(Exception):
    """Root of every error the orchestrator raises on purpose."""

    exit_code = 1
    step = "unknown"

    def __init__(self, message: str, *, step: str | None = None) -> None:
        super().__init__(message)
        if step is not None:
            self.step = step


class ConfigError(OrchestratorError):
    """Inputs or configuration are invalid; carries every problem found, each with its field path."""

    exit_code = 2
    step = "config"

    def __init__(self, problems: Sequence[str] | str) -> None:
        self.problems: tuple[str, ...] = (problems,) if isinstance(problems, str) else tuple(problems)
        count = len(self.problems)
        head = "invalid configuration" if count == 1 else f"invalid configuration ({count} problems)"
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in self.problems))


class GateError(OrchestratorError):
    """A gate refused the deploy. Nothing was touched."""

    exit_code = 3
    step = "gates"

    def __init__(self, message: str, *, gate: str, facts: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.gate = gate
        self.facts = dict(facts or {})


class MigrationError(OrchestratorError):
    step = "migrations"

    def __init__(
        self,
        message: str,
        *,
        migration: str | None = None,
        results: Sequence[Any] = (),
        plan: Any = None,
        problems: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.migration = migration
        self.results = tuple(results)
        """MigrationResult so far, the failed one last."""
        self.plan = plan
        """The MigrationPlan when the plan refused the run."""
        self.problems = tuple(problems)
        """Every refusal reason."""


class LockError(OrchestratorError):
    """Another run holds the deploy lock or the migration lock; nothing was touched by this run."""

    step = "lock"

    holder: Any = None
    """advisory_lock.LockHolder: pid, application_name, client_addr, backend_start, state."""


class DeployError(OrchestratorError):
    step = "deploy"

    def __init__(
        self,
        message: str,
        *,
        platform: str | None = None,
        operation: str | None = None,
        returned_to: str | None = None,
    ) -> None:
        super().__init__(message)
        self.platform = platform
        self.operation = operation
        self.returned_to = returned_to
        """The release the platform itself put traffic back on after the new one went live (App
        Platform undoing a release built from another commit); None when the new one never served."""


class HealthError(OrchestratorError):
    step = "health"

    def __init__(self, message: str, *, check: str | None = None, step: str | None = None) -> None:
        # `step` says which checks failed: a failed critical endpoint is a failed verification, not a
        # failed health endpoint.
        super().__init__(message, step=step)
        self.check = check


class RollbackError(OrchestratorError):
    step = "rollback"
