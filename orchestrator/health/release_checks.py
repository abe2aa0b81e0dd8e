"""The health side of a rollout, as the strategies see it (`health.verdict.Checks`).

Pre-switch: the seed's health flow against the release's own address, optionally followed by
the verification checks (analysis). Post-switch: the seed's `verify_deployment` through the
public route, every check in parallel under one deadline.
"""

from __future__ import annotations

import dataclasses
import time
from urllib.parse import urlsplit

from orchestrator.contract import DeployConfig, HealthCheckConfig
from orchestrator.health.loop import wait_until_healthy
from orchestrator.health.verdict import CheckVerdict
from orchestrator.health.verification import verify
from orchestrator.redaction import Secret

__all__ = ["ReleaseChecks"]


class ReleaseChecks:
    def __init__(self, config: DeployConfig, *, dsn: Secret | None) -> None:
        self._config = config
        self._dsn = dsn

    def release(self, base_url: str, *, analysis: bool, deadline: float | None = None) -> CheckVerdict:
        health = _on_release(self._config.health_check)
        budget = health.retries * (health.timeout_seconds + health.interval_seconds)
        own_deadline = time.monotonic() + budget
        verdict = wait_until_healthy(base_url, health, deadline=min(own_deadline, deadline or own_deadline))
        if not verdict.passed or not analysis:
            return CheckVerdict(verdict.passed, verdict.probes, verdict.reason)
        checked = verify(base_url, health, self._config.verification, dsn=self._dsn)
        reason = "; ".join(checked.failures) or None
        return CheckVerdict(checked.passed, verdict.probes + checked.probes, reason)

    def live(self, base_url: str) -> CheckVerdict:
        checked = verify(base_url, self._config.health_check, self._config.verification, dsn=self._dsn)
        return CheckVerdict(checked.passed, checked.probes, "; ".join(checked.failures) or None)


def _on_release(health: HealthCheckConfig) -> HealthCheckConfig:
    """The health check aimed at the release being checked: an absolute endpoint keeps only its path,
    or a pre-switch check would probe the public address (the old release) instead of the new one."""
    parts = urlsplit(health.endpoint)
    if not parts.scheme:
        return health
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return dataclasses.replace(health, endpoint=path)
