"""Waiting for an App Platform deployment to finish: backoff polling under one deadline.

No busy polling: the first look comes after `initial` seconds and the gap grows to `maximum`
(a deploy's early phases are short, its build and rollout long). app_action polls every 2 s with
no deadline at all, a known complaint; here the deadline is always finite.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .api import AppsApi

__all__ = ["FAILED_PHASES", "Backoff", "Outcome", "wait_for_deployment"]

log = logging.getLogger(__name__)

FAILED_PHASES = frozenset({"ERROR", "CANCELED", "SUPERSEDED"})
_DONE = FAILED_PHASES | {"ACTIVE"}


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 1.0
    factor: float = 1.6
    maximum: float = 10.0

    def delays(self) -> Iterator[float]:
        delay = self.initial
        while True:
            yield delay
            delay = min(self.maximum, delay * self.factor)


@dataclass(frozen=True, slots=True)
class Outcome:
    deployment: dict[str, Any]
    phase: str
    elapsed: float
    phase_elapsed: float
    """How long the deployment has been in `phase` as far as we saw."""
    polls: int
    timed_out: bool = False


def wait_for_deployment(
    api: AppsApi,
    app_id: str,
    deployment_id: str,
    *,
    deadline_seconds: float,
    backoff: Backoff,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Poll until ACTIVE, ERROR, CANCELED or SUPERSEDED, or until the deadline. Raises DeployError
    only when the API itself fails past its retries; a failed or late deployment is an Outcome."""
    start = clock()
    delays = backoff.delays()
    polls = 0
    phase, phase_since = "", start
    while True:
        body = api.read("get deployment", api.apps.get_deployment, app_id, deployment_id)
        polls += 1
        deployment: dict[str, Any] = (body or {}).get("deployment") or {}
        now = clock()
        current = str(deployment.get("phase") or "UNKNOWN")
        if current != phase:
            log.info("deployment %s: %s", deployment_id, current)
            phase, phase_since = current, now
        elapsed = now - start
        if phase in _DONE:
            return Outcome(deployment, phase, elapsed, now - phase_since, polls)
        remaining = deadline_seconds - elapsed
        if remaining <= 0:
            return Outcome(deployment, phase, elapsed, now - phase_since, polls, timed_out=True)
        sleep(min(next(delays), remaining))
