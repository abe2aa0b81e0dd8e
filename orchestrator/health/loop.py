"""Pre-switch health: the seed's health-check flow, bounded by an optional deadline.

Up to `retries` attempts, each one GET of `endpoint` (a path on the release being checked,
or an absolute http(s) URL) within `timeout_seconds`, passing on `expected_status`, with
`interval_seconds` between the end of one attempt and the start of the next (not after the
last one). `deadline` (a `time.monotonic()` value) cuts the loop: no attempt starts after it,
an attempt's timeout never reaches past it, and no sleep runs into it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from orchestrator.contract import HealthCheckConfig, HealthProbe
from orchestrator.errors import HealthError
from orchestrator.health.checks.base import timed
from orchestrator.health.checks.http import health_check, resolve_url
from orchestrator.progress import Reporter
from orchestrator.redaction import mask_url, redact

__all__ = ["HealthVerdict", "wait_until_healthy"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HealthVerdict:
    passed: bool
    probes: tuple[HealthProbe, ...]
    """Every attempt, in order."""
    reason: str | None
    """Why it failed (attempts made, the last answer), None when it passed."""

    def raise_if_failed(self) -> None:
        """Raises HealthError (step `health`, `check` = "health") when not passed."""
        if not self.passed:
            raise HealthError(self.reason or "health check failed", check="health")


def wait_until_healthy(
    base_url: str, check: HealthCheckConfig, *, deadline: float | None = None, label: str = ""
) -> HealthVerdict:
    """Poll the health endpoint until it answers `expected_status`, `retries` attempts, or the deadline.

    `label` names the release in logs and in `reason` (e.g. "v42"). Never raises for an unhealthy
    release: that is the verdict.
    """
    probe_check = health_check(base_url, check)
    who = f"{label} " if label else ""
    where = mask_url(resolve_url(base_url, check.endpoint))
    probes: list[HealthProbe] = []
    cut_by_deadline = False
    started = time.monotonic()
    progress = Reporter(f"{who}health at {where}", None if deadline is None else deadline - started)
    for attempt in range(1, check.retries + 1):
        progress.tick(time.monotonic() - started)
        timeout = check.timeout_seconds
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                cut_by_deadline = True
                break
            timeout = min(timeout, remaining)
        _, probe = timed(probe_check, timeout)
        probes.append(probe)
        if probe.passed:
            log.info("health: %s%s passed on attempt %d of %d", who, where, attempt, check.retries)
            return HealthVerdict(True, tuple(probes), None)
        log.warning("health: %s%s attempt %d of %d failed: %s", who, where, attempt, check.retries, probe.detail)
        if attempt == check.retries:
            break
        pause = check.interval_seconds
        if deadline is not None and time.monotonic() + pause >= deadline:
            cut_by_deadline = True
            break
        time.sleep(pause)
    last = probes[-1].detail if probes else "no attempt made"
    if cut_by_deadline:
        reason = f"{who}{where} not healthy before the deadline ({len(probes)} of {check.retries} attempts): {last}"
    else:
        reason = f"{who}{where} not healthy after {len(probes)} attempts: {last}"
    log.error("health: %s", reason)
    return HealthVerdict(False, tuple(probes), redact(reason))
