"""The `deployment_log` row of a finished run, read off its result (the output contract).

Every field of the result is kept: the seed's fields as columns or JSONB, the whole contract in
`result`. A gate refusal (the result's `refused` extra) fills `refused_reason`; the artifact
digests come from its `artifacts` extra. The result can quote secrets in error texts built by
other steps, so every string is redacted before it becomes a value here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from orchestrator.contract import Result
from orchestrator.ledger.jsonb import dumps
from orchestrator.redaction import redact, redact_data

__all__ = ["JSONB_COLUMNS", "finished_row"]

JSONB_COLUMNS = frozenset(
    {
        "deployment_details",
        "health_checks",
        "migrations_applied",
        "rollback",
        "hardening",
        "logs",
        "artifact_digests",
        "result",
    }
)
"""The columns whose values are JSON text, cast to jsonb on insert."""


def finished_row(result: Result, *, run_url: str | None) -> dict[str, Any]:
    """Column -> value, `deployment_id` first (the conflict key), JSONB columns as JSON text."""
    data = redact_data(result.to_dict())
    details = data.get("deployment_details", {})
    refused = data.get("refused")
    refused_reason = str(refused.get("reason")) if isinstance(refused, Mapping) else None
    digests = data.get("artifacts") if isinstance(data.get("artifacts"), Mapping) else {}
    return {
        "deployment_id": result.deployment_id,
        "validation_run_id": result.validation_run_id,
        "mode": result.mode,
        "status": result.status,
        "strategy": details.get("strategy"),
        "platform": details.get("platform"),
        "previous_version": details.get("previous_version"),
        "new_version": details.get("new_version"),
        "current_step": "done",
        "failed_step": result.failed_step,
        "refused_reason": redact(refused_reason) if refused_reason else None,
        "error": data.get("error"),
        "exit_code": result.exit_code,
        "url": result.url,
        "run_url": run_url,
        "deployed_at": result.deployed_at,
        "finished_at": datetime.now(UTC),
        "duration_seconds": details.get("duration_seconds"),
        "rolled_back": result.status == "rolled_back",
        "deployment_details": dumps(details),
        "health_checks": dumps(data.get("health_checks", [])),
        "migrations_applied": dumps(data.get("migrations_applied", [])),
        "rollback": dumps(data.get("rollback", {})),
        "hardening": dumps(data.get("hardening", {})),
        "logs": dumps(data.get("logs", [])),
        "artifact_digests": dumps(digests),
        "result": dumps(data),
    }
