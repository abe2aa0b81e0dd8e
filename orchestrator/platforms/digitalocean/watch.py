"""Waiting for an App Platform deployment to finish: backoff polling under one deadline.

The polling itself is `platforms.polling`'s: the gap between looks grows (a deploy's early
phases are short, its build and rollout long). app_action polls every 2 s with no deadline at
all, a known complaint; here the deadline is always finite.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.platforms import polling
from orchestrator.platforms.polling import BoundedWait

from .api import AppsApi

__all__ = ["FAILED_PHASES", "Backoff", "Outcome", "wait_for_deployment"]

log = logging.getLogger(__name__)

FAILED_PHASES = frozenset({"ERROR", "CANCELED", "SUPERSEDED"})
_DONE = FAILED_PHASES | {"ACTIVE"}


@dataclass(frozen=True, slots=True)
class Backoff(polling.Backoff):
    # A real deploy takes minutes (a build, then a rollout) and a rollback about one: early looks
    # catch the short phases, 15 s apart later keeps a 3-minute deploy under 20 API calls.
    initial: float = 2.0
    factor: float = 1.6
    maximum: float = 15.0


@dataclass(frozen=True, slots=True)
class Outcome:
    deployment: dict[str, Any]
    phase: str
    elapsed: float
    phase_elapsed: float
    """How long the deployment has been in `phase` as far as we saw."""
    polls: int
    timed_out: bool = False
    refused: str | None = None
    """Why the watch stopped before the end: the deployment is not the one that may run."""


def wait_for_deployment(
    api: AppsApi,
    app_id: str,
    deployment_id: str,
    *,
    deadline_seconds: float,
    backoff: Backoff,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    refuse: Callable[[dict[str, Any]], str | None] | None = None,
) -> Outcome:
    """Poll until ACTIVE, ERROR, CANCELED or SUPERSEDED, or until the deadline. Raises DeployError
    only when the API itself fails past its retries; a failed or late deployment is an Outcome.

    The first look waits one backoff step: the caller has just created (or found) the deployment,
    so an immediate look would only repeat what it knows. `refuse` sees every look: a reason it
    gives ends the watch at once (the caller cancels the deployment before it goes live)."""
    what = f"DigitalOcean deployment {deployment_id} to finish"
    wait = BoundedWait(deadline_seconds, backoff, clock=clock, sleep=sleep, what=what)
    wait.sleep_until_next_poll(0.0)
    polls = 0
    phase, phase_since = "", 0.0
    while True:
        body = api.read("get deployment", api.apps.get_deployment, app_id, deployment_id)
        polls += 1
        deployment: dict[str, Any] = (body or {}).get("deployment") or {}
        elapsed = wait.elapsed()
        current = str(deployment.get("phase") or "UNKNOWN")
        if current != phase:
            log.info("deployment %s: %s", deployment_id, current)
            phase, phase_since = current, elapsed
        reason = refuse(deployment) if refuse is not None else None
        if reason is not None:
            return Outcome(deployment, phase, elapsed, elapsed - phase_since, polls, refused=reason)
        if phase in _DONE:
            return Outcome(deployment, phase, elapsed, elapsed - phase_since, polls)
        if not wait.sleep_until_next_poll(elapsed):
            return Outcome(deployment, phase, elapsed, elapsed - phase_since, polls, timed_out=True)
