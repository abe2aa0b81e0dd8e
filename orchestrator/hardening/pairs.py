"""DPO/ORPO preference pairs built from what a failed run actually did.

One failed run gives one pair: what the orchestrator should have done (`preferred_output`) against
what it did (`dispreferred_output`), with the evidence (failing check, status codes, migration
error, log excerpt) in the scenario text and in `metadata`. Every string passes through
`redact()` before it is stored, so a secret that reached an error message never reaches a pair.

Priority scale (highest first), computed from the failure:
    critical  the rollback itself failed: users may be on a broken release, on-call is paged
    high      traffic had moved to the new release before the failure (users saw it), rolled back or not
    medium    the failure happened before any traffic moved (users never saw the new release)

`to_trl()` gives the prompt/chosen/rejected record that TRL's DPOTrainer and ORPOTrainer read.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from orchestrator.contract import HealthProbe, MigrationResult, Request, RollbackOutcome
from orchestrator.errors import OrchestratorError
from orchestrator.redaction import redact

__all__ = [
    "AGENT_NAME",
    "PRIORITIES",
    "FailureContext",
    "PreferencePair",
    "Priority",
    "RunFacts",
    "build_pair",
    "priority_of",
    "write_trl_jsonl",
]

AGENT_NAME = "DeploymentOrchestrator"
Priority = Literal["critical", "high", "medium"]
PRIORITIES: tuple[Priority, ...] = ("critical", "high", "medium")
Kind = Literal["failed_deploy", "rollback", "failed_rollback"]

# Pair ids are uuid5 in this namespace, so building the same pair twice gives the same id (and the
# same Idempotency-Key): a re-run of the hardening step cannot queue a second copy.
_PAIR_NAMESPACE = uuid.UUID("8f6f2d3a-3c1e-4c55-9d0e-5a1f6b2c7d40")
_MAX_LOG_LINES = 20
_MAX_LINE_CHARS = 500


class _Versioned(Protocol):
    @property
    def version(self) -> str: ...


class RunFacts(Protocol):
    """What `FailureContext.from_run` reads from the run's state (`run_state.RunState`, structurally
    typed, so hardening never imports the pipeline). An error's step is data, never parsed from its text."""

    @property
    def deployment_id(self) -> str: ...
    @property
    def previous(self) -> _Versioned | None: ...
    @property
    def probes(self) -> Sequence[HealthProbe]: ...
    @property
    def migrations(self) -> Sequence[MigrationResult]: ...
    @property
    def rollback(self) -> RollbackOutcome: ...
    @property
    def error(self) -> OrchestratorError | None: ...
    @property
    def cause(self) -> OrchestratorError | None:
        """The failure a rollback answered (None when none ran); its `step` is data."""

    @property
    def traffic_moved(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class FailureContext:
    """Everything the pipeline knows about one failed run, as plain data."""

    deployment_id: str
    environment: str
    step: str
    """The pipeline step that failed: gates, migrations, deploy, health, switch, verification, rollback."""
    reason: str
    traffic_moved: bool
    rolled_back: bool
    rollback_failed: bool
    new_version: str
    previous_version: str | None
    strategy: str
    platform: str
    validation_run_id: str | None = None
    failing_probes: Sequence[HealthProbe] = ()
    migrations: Sequence[MigrationResult] = ()
    log_excerpt: Sequence[str] = ()
    rollback_error: str | None = None
    run_url: str | None = None
    occurred_at: datetime | None = None

    @classmethod
    def from_run(
        cls,
        request: Request,
        state: RunFacts,
        *,
        log_excerpt: Sequence[str] = (),
        run_url: str | None = None,
    ) -> FailureContext:
        """The context of a finished, failed run.

        After a failed rollback the state's error is the rollback's; the original failure is the
        state's `cause`, with its step.
        """
        rollback = state.rollback
        rollback_failed = rollback.triggered and rollback.succeeded is False
        error = state.error
        step = error.step if error is not None else "unknown"
        reason = str(error) if error is not None else (rollback.reason or "unknown failure")
        rollback_error = None
        if rollback_failed:
            rollback_error = reason
            cause = state.cause
            step = cause.step if cause is not None else "rollback"
            reason = f"{step}: {cause}" if cause is not None else (rollback.reason or reason)
        return cls(
            deployment_id=state.deployment_id,
            environment=request.config.environment,
            step=step,
            reason=reason,
            traffic_moved=state.traffic_moved,
            rolled_back=rollback.triggered and rollback.succeeded is not False,
            rollback_failed=rollback_failed,
            new_version=request.inputs.version,
            previous_version=state.previous.version if state.previous is not None else None,
            strategy=request.config.deployment.strategy,
            platform=request.config.deployment.platform,
            validation_run_id=request.validation_run_id,
            failing_probes=tuple(p for p in state.probes if not p.passed),
            migrations=tuple(state.migrations),
            log_excerpt=tuple(log_excerpt),
            rollback_error=rollback_error,
            run_url=run_url,
        )


@dataclass(frozen=True, slots=True)
class PreferencePair:
    """The seed's pair: agent_name, failure_scenario, preferred/dispreferred output, priority, metadata."""

    id: str
    agent_name: str
    failure_scenario: str
    preferred_output: str
    dispreferred_output: str
    priority: Priority
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The body POSTed to agentbench (the seed's shape; the id travels as the Idempotency-Key)."""
        return {
            "agent_name": self.agent_name,
            "failure_scenario": self.failure_scenario,
            "preferred_output": self.preferred_output,
            "dispreferred_output": self.dispreferred_output,
            "priority": self.priority,
            "metadata": dict(self.metadata),
        }

    def to_trl(self) -> dict[str, str]:
        """One record of a TRL preference dataset (standard, non-conversational format)."""
        prompt = (
            f"You are {self.agent_name}, the agent that ships releases to production with zero downtime "
            "and rolls back on failure.\n\n"
            f"Situation:\n{self.failure_scenario}\n\nWhat should you do?"
        )
        return {"prompt": prompt, "chosen": self.preferred_output, "rejected": self.dispreferred_output}

    @classmethod
    def from_json(cls, pair_id: str, body: Mapping[str, Any]) -> PreferencePair:
        priority = body.get("priority")
        return cls(
            id=pair_id,
            agent_name=str(body["agent_name"]),
            failure_scenario=str(body["failure_scenario"]),
            preferred_output=str(body["preferred_output"]),
            dispreferred_output=str(body["dispreferred_output"]),
            priority=priority if priority in PRIORITIES else "medium",
            metadata=dict(body.get("metadata") or {}),
        )


def priority_of(ctx: FailureContext) -> Priority:
    if ctx.rollback_failed:
        return "critical"
    if ctx.traffic_moved:
        return "high"
    return "medium"


def _kind(ctx: FailureContext) -> Kind:
    if ctx.rollback_failed:
        return "failed_rollback"
    if ctx.rolled_back:
        return "rollback"
    return "failed_deploy"


def _line(text: str) -> str:
    text = redact(text).replace("\r", " ").strip()
    return text if len(text) <= _MAX_LINE_CHARS else text[: _MAX_LINE_CHARS - 1] + "…"


def _probe_text(probe: HealthProbe) -> str:
    text = f"{probe.endpoint} answered {probe.status_code} in {probe.response_time_ms:.0f} ms"
    if probe.status_code == 0:
        text = f"{probe.endpoint} did not answer (after {probe.response_time_ms:.0f} ms)"
    return text + (f" ({probe.detail})" if probe.detail else "")


def _failed_migrations(ctx: FailureContext) -> list[MigrationResult]:
    return [m for m in ctx.migrations if not m.success]


def _evidence(ctx: FailureContext) -> list[str]:
    lines = [f"- failing check: {_line(_probe_text(p))}" for p in ctx.failing_probes if not p.passed]
    for migration in _failed_migrations(ctx):
        error = f": {_line(migration.error)}" if migration.error else ""
        lines.append(f"- migration {migration.filename} ({migration.direction}) failed{error}")
    if ctx.rollback_failed and ctx.rollback_error:
        lines.append(f"- rollback error: {_line(ctx.rollback_error)}")
    excerpt = [_line(x) for x in ctx.log_excerpt[-_MAX_LOG_LINES:] if x.strip()]
    if excerpt:
        lines.append("- log excerpt:")
        lines.extend(f"    {x}" for x in excerpt)
    return lines


def _scenario(ctx: FailureContext) -> str:
    previous = ctx.previous_version or "none (first release)"
    head = (
        f"Deployment {ctx.deployment_id} of release {ctx.new_version} (previous: {previous}) to "
        f"{ctx.environment} with {ctx.strategy} on {ctx.platform} failed at step '{ctx.step}': {_line(ctx.reason)}."
    )
    traffic = "Traffic had moved to the new release." if ctx.traffic_moved else "No traffic had moved yet."
    if ctx.rollback_failed:
        after = "The rollback was attempted and failed."
    elif ctx.rolled_back:
        after = f"It was rolled back to {previous}."
    else:
        after = "It was not rolled back."
    evidence = _evidence(ctx)
    return "\n".join([head, f"{traffic} {after}", *(["Evidence:", *evidence] if evidence else [])])


_PREFERRED_BY_STEP: Mapping[str, str] = {
    "gates": "refuse before touching anything, and say which gate refused and how to satisfy it",
    "migrations": (
        "apply only verified migrations, each in one transaction with its history row, and on any error undo "
        "this run's migrations newest first before any release or traffic changes"
    ),
    "deploy": "bring the new release up beside the live one and abandon it without moving traffic if it fails",
    "health": "hold traffic on the previous release until the new one passes its health check, then abort cleanly",
    "switch": "move traffic atomically, draining in-flight requests, and switch straight back if the move fails",
    "verification": (
        "catch the failing check before traffic moves (verify the new release directly first), and after a "
        "switch roll back at the first failed verification"
    ),
    "rollback": "return traffic and schema to the previous release and verify it within the rollback deadline",
}


def _preferred(ctx: FailureContext) -> str:
    previous = ctx.previous_version or "the previous release"
    approach = _PREFERRED_BY_STEP.get(ctx.step, "detect the failure before users are affected and stop safely")
    parts = [f"At step '{ctx.step}': {approach}."]
    checks = [p for p in ctx.failing_probes if not p.passed]
    if checks:
        endpoints = ", ".join(sorted({p.endpoint for p in checks}))
        parts.append(f"Treat {endpoints} failing as a stop signal before any traffic reaches {ctx.new_version}.")
    failed = _failed_migrations(ctx)
    if failed:
        names = ", ".join(m.filename for m in failed)
        parts.append(f"Do not start the release while {names} cannot be applied; leave the schema as it was.")
    if ctx.rollback_failed or ctx.traffic_moved:
        parts.append(
            f"If traffic has moved, roll back to {previous}, undo this run's migrations, re-check {previous} "
            "and only then report the failure."
        )
    else:
        parts.append(f"Keep {previous} serving with no user-visible change and report the failure.")
    return " ".join(parts)


def _dispreferred(ctx: FailureContext) -> str:
    previous = ctx.previous_version or "the previous release"
    parts = [f"Proceeded with {ctx.new_version} and failed at step '{ctx.step}': {_line(ctx.reason)}."]
    statuses = sorted({p.status_code for p in ctx.failing_probes if not p.passed})
    if statuses:
        parts.append("Health responses: " + ", ".join(str(s) if s else "no answer" for s in statuses) + ".")
    if ctx.traffic_moved:
        parts.append("Users were already routed to the failing release.")
    if ctx.rollback_failed:
        error = f": {_line(ctx.rollback_error)}" if ctx.rollback_error else ""
        parts.append(f"The rollback to {previous} failed{error}; manual intervention was needed.")
    elif ctx.rolled_back:
        parts.append(f"Recovered only by rolling back to {previous}.")
    return " ".join(parts)


def build_pair(ctx: FailureContext) -> PreferencePair:
    """Build the run's pair. Pure: the same context gives the same pair, id included."""
    occurred = (ctx.occurred_at or datetime.now(UTC)).astimezone(UTC)
    kind = _kind(ctx)
    failing = [p for p in ctx.failing_probes if not p.passed]
    metadata: dict[str, Any] = {
        "deployment_id": ctx.deployment_id,
        "timestamp": occurred.isoformat().replace("+00:00", "Z"),
        "environment": ctx.environment,
        "kind": kind,
        "failed_step": ctx.step,
        "validation_run_id": ctx.validation_run_id,
        "strategy": ctx.strategy,
        "platform": ctx.platform,
        "new_version": ctx.new_version,
        "previous_version": ctx.previous_version,
        "traffic_moved": ctx.traffic_moved,
        "rolled_back": ctx.rolled_back,
        "rollback_failed": ctx.rollback_failed,
        "status_codes": [p.status_code for p in failing],
        "failing_checks": [
            {"endpoint": p.endpoint, "status_code": p.status_code, "response_time_ms": p.response_time_ms}
            | ({"detail": _line(p.detail)} if p.detail else {})
            for p in failing
        ],
        "migration_errors": [
            {"filename": m.filename, "version": m.version, "direction": m.direction}
            | ({"error": _line(m.error)} if m.error else {})
            for m in _failed_migrations(ctx)
        ],
        "run_url": ctx.run_url,
        "source": "deploy-orchestrator",
    }
    pair_id = uuid.uuid5(_PAIR_NAMESPACE, f"{ctx.deployment_id}/{kind}/{ctx.step}")
    return PreferencePair(
        id=str(pair_id),
        agent_name=AGENT_NAME,
        failure_scenario=_scenario(ctx),
        preferred_output=_preferred(ctx),
        dispreferred_output=_dispreferred(ctx),
        priority=priority_of(ctx),
        metadata=_redact_all({k: v for k, v in metadata.items() if v is not None}),
    )


def _redact_all(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _redact_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_all(v) for v in value]
    return value


def write_trl_jsonl(pairs: Iterable[PreferencePair], path: Path) -> int:
    """Write pairs as TRL prompt/chosen/rejected JSONL (one object a line); returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for pair in pairs:
            out.write(json.dumps(pair.to_trl(), ensure_ascii=False) + "\n")
            count += 1
    return count
