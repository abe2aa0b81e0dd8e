"""Is a Deployment's rollout done? The rule `kubectl rollout status` uses, and a bounded wait for it.

Done means: the controller has seen the latest spec (`observedGeneration >= generation`), every
replica runs the new template (`updatedReplicas == replicas`), no old or surplus pod remains
(`status.replicas == updatedReplicas`, and not above `spec.replicas`: stricter than kubectl, so a
canary step's scale-down has taken effect) and every new pod is available. Failed means the controller
set `Progressing=False` with reason `ProgressDeadlineExceeded` (the Deployment's own
`progressDeadlineSeconds`). We also stop at a wall-clock deadline of our own, in case the
controller is not there to say so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import DeployError
from orchestrator.platforms import polling
from orchestrator.platforms.polling import BoundedWait

from .api import PLATFORM

__all__ = ["Backoff", "RolloutState", "rollout_state", "wait_for_rollout"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff(polling.Backoff):
    initial: float = 0.5
    factor: float = 1.5
    maximum: float = 5.0


@dataclass(frozen=True, slots=True)
class RolloutState:
    done: bool
    detail: str
    """Where the rollout stands, as `kubectl rollout status` would word it."""
    failure: str | None = None
    """The failed condition (type, reason, message) when the rollout cannot finish any more."""


def rollout_state(deployment: dict[str, Any]) -> RolloutState:
    """Pure: read the rollout's state off one Deployment document."""
    name = deployment.get("metadata", {}).get("name", "?")
    generation = int(deployment.get("metadata", {}).get("generation") or 0)
    status = deployment.get("status") or {}
    if int(status.get("observedGeneration") or 0) < generation:
        return RolloutState(False, f"waiting for the controller to observe deployment {name}'s new spec")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            failure = (
                f"condition Progressing=False, reason ProgressDeadlineExceeded: "
                f"{condition.get('message') or 'no message'}"
            )
            return RolloutState(False, f"deployment {name} exceeded its progress deadline", failure)
    wanted = int((deployment.get("spec") or {}).get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < wanted:
        return RolloutState(False, f"{updated} of {wanted} new replicas updated")
    if total > updated:
        return RolloutState(False, f"{total - updated} old replicas pending termination")
    if total > wanted:
        # kubectl calls a scale-down done at once; a canary step must not count pods still leaving.
        return RolloutState(False, f"{total - wanted} surplus replicas pending termination")
    if available < updated:
        return RolloutState(False, f"{available} of {updated} updated replicas available")
    return RolloutState(True, f"deployment {name} successfully rolled out ({available} available)")


def wait_for_rollout(
    read: Callable[[], dict[str, Any] | None],
    *,
    name: str,
    namespace: str,
    deadline_seconds: float,
    backoff: Backoff,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll until the rollout is done; return the Deployment. Raises DeployError naming the Deployment
    and the condition when it failed, disappeared, or is still going at the deadline."""
    what = f"the rollout of deployment {name} in namespace {namespace}"
    wait = BoundedWait(deadline_seconds, backoff, clock=clock, sleep=sleep, what=what)
    last = ""
    while True:
        deployment = read()
        if deployment is None:
            raise DeployError(
                f"deployment {name} in namespace {namespace} disappeared while rolling out",
                platform=PLATFORM,
                operation="wait for rollout",
            )
        state = rollout_state(deployment)
        if state.detail != last:
            log.info("%s", state.detail)
            last = state.detail
        if state.done:
            return deployment
        elapsed = wait.elapsed()
        if state.failure:
            raise DeployError(
                f"deployment {name} in namespace {namespace} did not roll out: {state.failure} "
                f"(after {elapsed:.1f} s). The pods of the new template never became available: "
                f"`kubectl -n {namespace} describe deployment {name}` and its pods' events say why",
                platform=PLATFORM,
                operation="wait for rollout",
            )
        if not wait.sleep_until_next_poll(elapsed):
            raise DeployError(
                f"deployment {name} in namespace {namespace} did not roll out within {deadline_seconds:g} s: "
                f"{state.detail}; raise the deadline if pods legitimately start this slowly",
                platform=PLATFORM,
                operation="wait for rollout",
            )
