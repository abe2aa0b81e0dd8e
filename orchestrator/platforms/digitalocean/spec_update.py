"""Finding and making the deployment of a release: join one under way, or PUT the spec, never twice.

A PUT that fails ambiguously may still have created the deployment, so before sending again we
look for a deployment of the version created after the app's last one.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from orchestrator.errors import DeployError

from .api import PLATFORM, AppsApi
from .deployments import when
from .spec import version_of

__all__ = ["find_new_deployment", "unfinished", "update_spec"]

log = logging.getLogger(__name__)
_RECENT = 50


def unfinished(app: dict[str, Any], version: str, component: str) -> dict[str, Any] | None:
    """An in-progress deployment of `version` (a previous run that died while waiting): join it."""
    for key in ("in_progress_deployment", "pending_deployment"):
        deployment = app.get(key)
        if deployment and deployment.get("id") and version_of(deployment.get("spec"), component) == version:
            log.info("joining deployment %s of %s already under way", deployment["id"], version)
            return dict(deployment)
    return None


def update_spec(
    api: AppsApi,
    app: dict[str, Any],
    spec: dict[str, Any],
    version: str,
    component: str,
    *,
    refresh_sources: bool = False,
) -> dict[str, Any]:
    """PUT the spec (App Platform creates a deployment for it) and return that deployment.
    `refresh_sources`: App Platform fetches every git source's branch head again (by default it
    rebuilds only sources the spec changed, so a new commit on an unchanged branch would be missed).

    A PUT that fails ambiguously may still have created the deployment: we look for a deployment
    of `version` created after the app's last one before sending again.
    """
    app_id = str(app["id"])
    before = when(app.get("last_deployment_created_at"))

    def send() -> dict[str, Any]:
        request: dict[str, Any] = {"spec": spec, **({"update_all_source_versions": True} if refresh_sources else {})}
        body = api.once("update app spec", api.apps.update, app_id, request)
        updated = (body or {}).get("app") or {}
        deployment = updated.get("pending_deployment") or updated.get("in_progress_deployment")
        if deployment and deployment.get("id"):
            return dict(deployment)
        found = find_new_deployment(api, app_id, version, component, before)
        if found is None:
            raise DeployError(
                f"update app spec: App Platform accepted the spec for {version} but started no deployment",
                platform=PLATFORM,
                operation="update app spec",
            )
        return found

    return api.create("update app spec", send, lambda: find_new_deployment(api, app_id, version, component, before))


def find_new_deployment(
    api: AppsApi, app_id: str, version: str, component: str, before: datetime
) -> dict[str, Any] | None:
    body = api.read("list deployments", api.apps.list_deployments, app_id, per_page=_RECENT)
    for deployment in sorted(
        (body or {}).get("deployments") or [], key=lambda d: when(d.get("created_at")), reverse=True
    ):
        if when(deployment.get("created_at")) > before and version_of(deployment.get("spec"), component) == version:
            return dict(deployment)
    return None
