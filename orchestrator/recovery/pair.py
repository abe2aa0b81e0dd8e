"""The preference pair for a crashed run: one per run, however often recovery is retried.

The pair's id is derived from the deployment id, the kind and the step (hardening/pairs.py), so the
context built here depends only on what the crashed row says, never on what this particular
recovery attempt did: a recovery that is itself killed and redone queues the same pair again, and
the outbox keeps one (`ON CONFLICT DO NOTHING`), delivered once.
"""

from __future__ import annotations

from orchestrator.hardening.pairs import FailureContext
from orchestrator.recovery.crashed import CrashedRun

__all__ = ["crash_context"]

# Steps after which the crashed run may have moved traffic to its release.
_TRAFFIC_STEPS = frozenset({"rollout", "verified", "rollback", "cancelled"})


def crash_context(run: CrashedRun, *, environment: str, platform: str, run_url: str | None) -> FailureContext:
    step = run.current_step or "start"
    return FailureContext(
        deployment_id=run.deployment_id,
        environment=environment,
        step=step,
        reason=(
            f"the orchestrator's process died during step '{step}' of a {run.mode} run (killed, out of memory, "
            "or its runner was lost), leaving production in whatever state that step had reached"
        ),
        traffic_moved=step in _TRAFFIC_STEPS,
        rolled_back=True,
        rollback_failed=False,
        new_version=run.new_version or "unknown",
        previous_version=run.previous_version,
        strategy=run.strategy or "unknown",
        platform=platform,
        validation_run_id=run.validation_run_id,
        run_url=run_url,
    )
