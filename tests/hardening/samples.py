"""Sample failures and results for the hardening and record tests (plain data, no peers)."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.contract import (
    DeploymentDetails,
    HardeningOutcome,
    HealthProbe,
    LogEntry,
    MigrationResult,
    Result,
    RollbackOutcome,
)
from orchestrator.hardening.pairs import FailureContext


def probe(endpoint: str = "/health", status: int = 503, passed: bool = False, ms: float = 42.0) -> HealthProbe:
    return HealthProbe(endpoint, status, ms, passed, "2026-01-01T00:00:00Z", detail=f"expected 200, got {status}")


def failure(
    deployment_id: str = "d-0001",
    *,
    step: str = "health",
    traffic_moved: bool = False,
    rolled_back: bool = True,
    rollback_failed: bool = False,
    reason: str = "health check /health answered 503 (expected 200)",
    **extra: object,
) -> FailureContext:
    fields: dict[str, object] = {
        "deployment_id": deployment_id,
        "environment": "production",
        "step": step,
        "reason": reason,
        "traffic_moved": traffic_moved,
        "rolled_back": rolled_back,
        "rollback_failed": rollback_failed,
        "new_version": "v2",
        "previous_version": "v1",
        "strategy": "blue_green",
        "platform": "local",
        "validation_run_id": "vr-42",
        "failing_probes": (probe(),),
        "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    fields.update(extra)
    return FailureContext(**fields)  # type: ignore[arg-type]


def result(
    status: str = "rolled_back",
    *,
    deployment_id: str = "d-0001",
    rollback_failed: bool = False,
    extras: tuple[tuple[str, object], ...] = (),
    error: str | None = "health: /health answered 503",
) -> Result:
    triggered = status == "rolled_back" or rollback_failed
    return Result(
        deployment_id=deployment_id,
        validation_run_id="vr-42",
        deployed_at="2026-01-01T00:00:00.000Z",
        status=status,  # type: ignore[arg-type]
        deployment_details=DeploymentDetails("blue_green", "local", "v1", "v2", 12.5),
        health_checks=(probe(), probe(status=200, passed=True, ms=8.0)),
        migrations_applied=(
            MigrationResult("3", "V3__add_orders.sql", 120.0, True),
            MigrationResult("3", "U3__add_orders.sql", 30.0, True, direction="down"),
        ),
        rollback=RollbackOutcome(
            triggered=triggered,
            reason="health: /health answered 503" if triggered else None,
            previous_version="v1" if triggered else None,
            duration_seconds=3.25 if triggered else None,
            succeeded=(not rollback_failed) if triggered else None,
        ),
        hardening=HardeningOutcome(dpo_pairs_generated=1),
        logs=(LogEntry("error", "health check failed", "2026-01-01T00:00:01.000Z"),),
        url="http://127.0.0.1:8080",
        exit_code=0 if status == "success" else 1,
        error=None if status == "success" else error,
        failed_step=None if status == "success" else "health",
        extras=extras,
    )
