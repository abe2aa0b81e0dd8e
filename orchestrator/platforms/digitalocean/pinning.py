"""App Platform's own rollback: validate, roll back (App Platform pins the app), commit or revert.

Whether a rollback is waiting for our decision is known from what this run did (the rollback
deployment it created) and from what App Platform shows (the rollback deployment's own phase, the
app's active deployment), not from GET app's optional `pinned_deployment` alone: when that field
is missing the app still is pinned, and a commit or revert that trusted it would never be sent,
leaving every later deploy refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.errors import DeployError

from .api import PLATFORM, AppsApi, NotFoundError
from .deployments import condition, newest_after, when

__all__ = ["PinnedRollback", "Pinning", "refuse_if_pinned"]

log = logging.getLogger(__name__)

Await = Callable[[str, dict[str, Any], str], object]
"""Wait for (app id, deployment, operation) to go live; raises DeployError when it does not."""


def refuse_if_pinned(app: dict[str, Any], operation: str) -> None:
    """Raise DeployError when a rollback left `app` pinned: App Platform refuses spec updates then."""
    pinned = app.get("pinned_deployment")
    if pinned:
        raise DeployError(
            f"{operation}: app {app.get('id')} is pinned to deployment {pinned.get('id')} by a rollback that "
            "was neither committed nor reverted; run mode rollback to finish it, or commit/revert it in the "
            "control panel",
            platform=PLATFORM,
            operation="update app spec",
        )


@dataclass(frozen=True, slots=True)
class PinnedRollback:
    """The rollback deployment the app is pinned to until it is committed or reverted."""

    app_id: str
    deployment_id: str
    created_at: datetime


class Pinning:
    """Rollbacks of one adapter: remembers the one it made until it is committed or reverted."""

    def __init__(self, api: AppsApi, wait: Await) -> None:
        self.api = api
        self._wait = wait
        self.pending: PinnedRollback | None = None

    def roll_back(
        self, app: dict[str, Any], ref: str, operation: str, matches: Callable[[dict[str, Any]], bool]
    ) -> None:
        """Validate, roll back to deployment `ref` and wait until it is live. Raises DeployError with
        App Platform's reason when it refuses. The app stays pinned (also when the rollback
        deployment fails) until `confirm`."""
        app_id = str(app["id"])
        request = {"deployment_id": ref, "skip_pin": False}
        verdict = self.api.read("validate rollback", self.api.apps.validate_rollback, app_id, request) or {}
        warnings = [condition(w) for w in verdict.get("warnings") or []]
        if not verdict.get("valid"):
            reasons = [condition(verdict.get("error") or {})] + [f"warning {w}" for w in warnings]
            raise DeployError(
                f"{operation}: App Platform refuses the rollback to deployment {ref}: {'; '.join(reasons)}",
                platform=PLATFORM,
                operation="validate rollback",
            )
        for warning in warnings:
            log.warning("%s: %s", operation, warning)
        before = when(app.get("last_deployment_created_at"))

        def send() -> dict[str, Any]:
            body = self.api.once("rollback", self.api.apps.create_rollback, app_id, request)
            return dict((body or {}).get("deployment") or {})

        def look() -> dict[str, Any] | None:
            # Any deployment newer than the app's last one that is a clone of `ref`: ours.
            return newest_after(self._app(app_id), before, lambda d: d.get("cloned_from") == ref or matches(d))

        deployment = self.api.create("rollback", send, look)
        self.pending = PinnedRollback(app_id, str(deployment.get("id")), when(deployment.get("created_at")))
        self._wait(app_id, deployment, operation)

    def confirm(self, app_id: str, healthy: bool) -> None:
        """Commit (healthy) or revert the pinned rollback, and wait for a revert's deployment. A
        rollback this run made is settled whatever GET app shows; otherwise the app's
        `pinned_deployment` says whether there is one. Nothing to do when there is none."""
        pin = self.pending if self.pending is not None and self.pending.app_id == app_id else None
        if pin is None:
            pinned = self._app(app_id).get("pinned_deployment") or {}
            if not pinned.get("id"):
                log.info("app %s is not pinned: no rollback to %s", app_id, "commit" if healthy else "revert")
                return
            pin = PinnedRollback(app_id, str(pinned["id"]), when(pinned.get("created_at")))
        if healthy:
            self._commit(pin)
        else:
            self._revert(pin)
        self.pending = None

    def _commit(self, pin: PinnedRollback) -> None:
        # A commit changes no deployment, so re-sending it after an ambiguous failure is safe; App
        # Platform refuses the second one (the app is no longer pinned), which is judged below.
        try:
            self.api.read("commit rollback", self.api.apps.commit_rollback, pin.app_id)
        except NotFoundError:
            raise
        except DeployError:
            if not self._committed(pin):
                raise
            log.info("the rollback to deployment %s was already committed", pin.deployment_id)

    def _committed(self, pin: PinnedRollback) -> bool:
        app = self._app(pin.app_id)
        active = app.get("active_deployment") or {}
        return not (app.get("pinned_deployment") or {}).get("id") and active.get("id") == pin.deployment_id

    def _revert(self, pin: PinnedRollback) -> None:
        def send() -> dict[str, Any]:
            body = self.api.once("revert rollback", self.api.apps.revert_rollback, pin.app_id)
            deployment = dict((body or {}).get("deployment") or {})
            return deployment if deployment.get("id") else (look() or deployment)

        def look() -> dict[str, Any] | None:
            # App Platform redeploys the spec from before the rollback: the one deployment newer
            # than the rollback deployment.
            return newest_after(self._app(pin.app_id), pin.created_at, lambda d: d.get("id") != pin.deployment_id)

        deployment = self.api.create("revert rollback", send, look)
        if not deployment.get("id"):
            raise DeployError(
                f"revert rollback: App Platform accepted the revert of deployment {pin.deployment_id} but started "
                "no deployment; check the app in the DigitalOcean control panel",
                platform=PLATFORM,
                operation="revert rollback",
            )
        self._wait(pin.app_id, deployment, "revert of the rollback")

    def _app(self, app_id: str) -> dict[str, Any]:
        body = self.api.read("get app", self.api.apps.get, app_id)
        return dict((body or {}).get("app") or {})
