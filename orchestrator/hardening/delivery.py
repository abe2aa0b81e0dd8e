"""Hardening off the critical path: store pairs first, then deliver what is queued, oldest first.

`flush()` runs at the start of every run (leftovers of earlier runs) and `emit()` at the end of a
failed one (build, store, then flush). Neither ever raises: a failure to deliver is logged and
reported, the pairs stay queued, and the deploy's exit code is not affected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from orchestrator.contract import DeployConfig, HardeningOutcome
from orchestrator.hardening.agentbench import AgentbenchClient, DeliveryError, RejectedPairError
from orchestrator.hardening.outbox import Outbox, OutboxError, OutboxEvent
from orchestrator.hardening.pairs import FailureContext, build_pair
from orchestrator.recovery import crash_points
from orchestrator.redaction import Secret

__all__ = ["DeliveryReport", "HardeningReport", "client_from_config", "emit", "flush", "outbox_from_config"]

log = logging.getLogger(__name__)

DEFAULT_BUDGET_SECONDS = 5.0
DEFAULT_BATCH_SIZE = 25


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one flush did. `remaining` counts events still pending afterwards (database and file)."""

    delivered: int = 0
    rejected: int = 0
    imported: int = 0
    remaining: int = 0
    submissions: Mapping[str, str] = field(default_factory=dict)
    """Outbox event id (= Idempotency-Key) -> agentbench submission_id, for this flush."""
    stopped: str | None = None
    """Why the flush stopped before the queue was empty (budget, endpoint error), if it did."""
    store: Literal["database", "file", "none"] = "none"


@dataclass(frozen=True, slots=True)
class HardeningReport:
    """What `emit()` did for this run's failure."""

    pairs_generated: int
    events: tuple[OutboxEvent, ...]
    delivery: DeliveryReport
    lost: int = 0
    """Pairs that could be stored nowhere (database and file both failed); logged as errors."""

    @property
    def fallback_file(self) -> str | None:
        files = [e.location for e in self.events if e.stored == "file"]
        return files[0] if files else None

    @property
    def submission_id(self) -> str | None:
        """agentbench's submission_id for this run's (last) pair, if it was delivered now."""
        ids = [self.delivery.submissions[e.id] for e in self.events if e.id in self.delivery.submissions]
        return ids[-1] if ids else None

    @property
    def delivered(self) -> int:
        return sum(1 for e in self.events if e.id in self.delivery.submissions)

    @property
    def queued(self) -> int:
        return len(self.events) - self.delivered

    def to_outcome(self) -> HardeningOutcome:
        return HardeningOutcome(
            dpo_pairs_generated=self.pairs_generated,
            agentbench_submission_id=self.submission_id,
            delivered=self.delivered,
            queued=self.queued,
            fallback_file=self.fallback_file,
        )


def flush(
    outbox: Outbox,
    client: AgentbenchClient | None,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> DeliveryReport:
    """Deliver queued events oldest first, each at most once, within `budget_seconds`. Never raises.

    Imports the fallback file into the database first when the database is reachable. Stops at
    the first event that could not be delivered within the budget (order is kept, and a down
    endpoint is not hammered once per event); an event agentbench refuses (400/413/422) is marked
    `rejected`, kept in the table, and does not block the ones behind it.
    """
    try:
        return _flush(outbox, client, budget_seconds, batch_size)
    except Exception:
        # Hardening must never change a deploy's outcome; anything unforeseen is logged, not raised.
        log.exception("hardening flush failed unexpectedly; queued pairs stay queued")
        return DeliveryReport(stopped="internal error (see log)")


def _flush(outbox: Outbox, client: AgentbenchClient | None, budget: float, batch_size: int) -> DeliveryReport:
    deadline = time.monotonic() + budget
    imported = outbox.import_file()
    submissions: dict[str, str] = {}
    rejected = 0
    stopped: str | None = None
    store: Literal["database", "file", "none"] = "none"
    if client is None:
        stopped = "no agentbench client (token not set)"
    while stopped is None and client is not None:
        if time.monotonic() >= deadline:
            stopped = f"delivery budget of {budget:g}s used up"
            break
        with outbox.claim(batch_size) as claim:
            store = claim.stored
            if not claim.events:
                break
            for event_id, body in claim.events:
                if time.monotonic() >= deadline:
                    stopped = f"delivery budget of {budget:g}s used up"
                    break
                try:
                    submission = client.submit_with_retry(body, event_id, deadline=deadline)
                except RejectedPairError as exc:
                    log.error("agentbench rejected preference pair %s, kept as rejected: %s", event_id, exc)
                    claim.mark(event_id, "rejected", str(exc))
                    rejected += 1
                except DeliveryError as exc:
                    log.warning("preference pair %s not delivered, stays queued: %s", event_id, exc)
                    claim.mark(event_id, "failed", str(exc))
                    stopped = str(exc)
                    break
                else:
                    crash_points.reach("during-delivery")  # delivered, not yet marked: sent again, same key
                    claim.mark(event_id, "delivered", submission)
                    submissions[event_id] = submission
    remaining = len(outbox.pending())
    if submissions or remaining:
        log.info(
            "hardening outbox: %d delivered, %d rejected, %d still queued%s",
            len(submissions),
            rejected,
            remaining,
            f" ({stopped})" if stopped and remaining else "",
        )
    return DeliveryReport(
        delivered=len(submissions),
        rejected=rejected,
        imported=imported,
        remaining=remaining,
        submissions=submissions,
        stopped=stopped if remaining else None,
        store=store,
    )


def emit(
    contexts: Sequence[FailureContext],
    outbox: Outbox,
    client: AgentbenchClient | None,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
) -> HardeningReport:
    """Build one pair per failure, store each durably, then flush. Never raises."""
    events: list[OutboxEvent] = []
    lost = 0
    for ctx in contexts:
        try:
            events.append(outbox.enqueue(build_pair(ctx)))
        except OutboxError as exc:
            log.error("%s", exc)
            lost += 1
        except Exception:
            log.exception("building or storing the preference pair for %s failed", ctx.deployment_id)
            lost += 1
    crash_points.reach("after-outbox-store")
    delivery = flush(outbox, client, budget_seconds) if events else DeliveryReport()
    return HardeningReport(pairs_generated=len(contexts), events=tuple(events), delivery=delivery, lost=lost)


def client_from_config(config: DeployConfig, env: Mapping[str, str]) -> AgentbenchClient | None:
    """The agentbench client, or None (logged) when the token variable is unset: pairs then only queue."""
    name = config.agentbench.token_env_var
    token = env.get(name)
    if not token:
        log.warning("agentbench token variable %s is not set; preference pairs are queued, not delivered", name)
        return None
    return AgentbenchClient(
        config.agentbench.url, Secret(token, name), timeout=min(config.agentbench.timeout_seconds, 10.0)
    )


def outbox_from_config(
    config: DeployConfig, workspace: Path, env: Mapping[str, str], *, schema: str = "public"
) -> Outbox:
    """The outbox in the ledger database (ledger.dsn_env_var, else credentials.db_connection_env_var).

    Without a DSN in the environment (or with the ledger disabled) the fallback file is the outbox.
    """
    name = config.ledger.dsn_env_var or config.credentials.db_connection_env_var
    value = env.get(name) if config.ledger.enabled else None
    return Outbox(Secret(value, name) if value else None, workspace, schema=schema)
