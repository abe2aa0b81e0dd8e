"""A live app's components as App Platform reports them (`GET /v2/apps/{id}/health`).

For an app of workers and jobs only there is no URL to check: that a deployment went live and
that its workers report HEALTHY with their replicas ready is what verification can know, so a
worker that is UNHEALTHY (or has no replica ready) fails the deploy like a failed health check.
"""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.errors import DeployError

from .api import PLATFORM, AppsApi

__all__ = ["require_healthy_components"]

log = logging.getLogger(__name__)


def require_healthy_components(
    api: AppsApi, app_id: str, spec: dict[str, Any] | None, operation: str = "verification"
) -> None:
    """Raise DeployError naming every worker of `spec` that App Platform reports unhealthy."""
    names = {str(c.get("name")) for c in (spec or {}).get("workers") or []}
    body = api.read("get app health", api.apps.get_health, app_id) or {}
    reported: list[dict[str, Any]] = (body.get("app_health") or {}).get("components") or []
    sick = [
        f"{c.get('name')}: {c.get('state', 'UNKNOWN')}, {c.get('replicas_ready', 0)} of "
        f"{c.get('replicas_desired', 0)} replicas ready"
        for c in reported
        if c.get("name") in names
        and (c.get("state") == "UNHEALTHY" or int(c.get("replicas_ready") or 0) < int(c.get("replicas_desired") or 0))
    ]
    if sick:
        raise DeployError(
            f"{operation}: App Platform made the deployment live but reports components unhealthy ({'; '.join(sick)})",
            platform=PLATFORM,
            operation="get app health",
        )
    states = ", ".join(f"{c.get('name')} {c.get('state', 'UNKNOWN')}" for c in reported if c.get("name") in names)
    log.info("verified without a URL (workers and jobs only): deployment ACTIVE; components %s", states or "none")
