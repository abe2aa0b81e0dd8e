"""Kubernetes rolling: the Deployment's own rolling update, which cuts over by itself.

The native rolling update replaces pods one surge at a time and only moves on once each new pod is
ready, so Kubernetes is the one gating the cutover here, as App Platform is for DigitalOcean: this
adapter sets `cuts_over_itself = True`, and the rolling plan becomes `start` then verify.

- `start(v)` replaces the pod template of Deployment `<app>` (new image, version label) with
  `maxUnavailable: 0` and a progress deadline, keeping the template it replaced (kept.py), and
  waits for the rollout. When the rollout fails (ProgressDeadlineExceeded, our deadline) the
  template it replaced is restored at once, so the old pods, which never stopped serving, stay the
  release, and DeployError names the Deployment and the condition.
- `rollback(to)` (and `route({to: 100})`) restores the kept template of `to` and waits for that
  rollout. The template it replaces is dropped: a release rolled back from is never a target, so
  after v2 → v3 → bad4 (undone) a rollback returns to v2.
- The releases are the current template and the kept ones. `retire(keep)` trims the kept list to
  `keep` (Kubernetes prunes old ReplicaSets itself by `revisionHistoryLimit`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from orchestrator.errors import DeployError
from orchestrator.platforms.base import Release

from .adapter import STRATEGIES
from .api import PLATFORM
from .cluster import Cluster
from .kept import kept_templates, with_kept
from .manifest import (
    NAME_LABEL,
    RUN_ANNOTATION,
    VERSION_LABEL,
    image_of,
    restored,
    rolled,
    version_of,
    with_selector,
)
from .rollout import rollout_state

__all__ = ["KubernetesRollingPlatform"]

log = logging.getLogger(__name__)


class KubernetesRollingPlatform:
    """strategy rolling on the Deployment `<app>` itself. See the module docstring."""

    name = "kubernetes"
    strategies = STRATEGIES
    cuts_over_itself = True

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.api = cluster.api
        self.app = cluster.app

    def live(self) -> Release | None:
        """The release of the Deployment's current pod template (None when it has none labelled)."""
        deployment = self.api.get_deployment(self.app)
        if deployment is None or version_of(deployment) is None:
            return None
        return self._release(deployment)

    def live_url(self) -> str:
        return self.cluster.live_url()

    def releases(self) -> list[Release]:
        """The current template's release, then the kept ones (templates that went live), newest first."""
        deployment = self.api.get_deployment(self.app)
        if deployment is None:
            return []
        kept = [self._release(deployment)] if version_of(deployment) else []
        for template in kept_templates(deployment):
            if all(r.version != template.version for r in kept):
                image = image_of({"spec": {"template": template.template}}, self.cluster.container)
                kept.append(Release(template.version, image=image, ref=self.app))
        return kept

    def start(self, version: str, image: str | None) -> Release:
        """Roll Deployment `<app>` to `version` and return once every pod runs it. Idempotent per
        version; refuses a new image under the live version label. Raises DeployError (the previous
        template restored) when the rollout fails."""
        operation = f"rolling update to {version}"
        self.cluster.require_version_label(version, operation)
        deployment = self._deployment(operation)
        current = version_of(deployment)
        running = image_of(deployment, self.cluster.container)
        wanted_image = image or running
        if current == version and running != wanted_image:
            # Rolling it in place would make the live template the "previous" one, so a rollback to
            # the release before would find nothing to return to (releases go by version label).
            raise DeployError(
                f"{operation}: release {version} is live with image {running} (Deployment {self.app}); "
                f"deploy the new image {wanted_image} under a new version label",
                platform=PLATFORM,
                operation=operation,
            )
        if current == version:
            if rollout_state(deployment).done:
                log.info("deployment %s already runs %s", self.app, version)
                return self._release(deployment, url=self.cluster.live_url())
        else:
            self._unpin_service(operation)
            self.cluster.update_deployment(
                self.app,
                lambda d: rolled(
                    d,
                    version=version,
                    image=image,
                    container=self.cluster.container,
                    run=self.cluster.run,
                    previous_version=version_of(d) or "",
                    progress_deadline=self.cluster.timing.progress_deadline_seconds,
                ),
            )
        try:
            done = self.cluster.wait(self.app)
        except DeployError as exc:
            restored_to = self._undo(version)
            raise DeployError(
                f"{exc}; {restored_to}",
                platform=PLATFORM,
                operation="wait for rollout",
            ) from exc
        return self._release(done, url=self.cluster.live_url())

    def route(self, weights: Mapping[str, int]) -> None:
        """Only `{version: 100}` for the current or the kept release: the rolling update has no weights."""
        targets = [v for v, w in weights.items() if w]
        if len(targets) != 1 or weights[targets[0]] != 100:
            raise DeployError(
                f"route {dict(weights)}: a Kubernetes rolling update moves traffic pod by pod by itself and "
                "cannot hold a split; use strategy canary for weighted steps",
                platform=PLATFORM,
                operation="route",
            )
        self.rollback(Release(targets[0]))

    def rollback(self, to: Release) -> None:
        """Make `to` the Deployment's template again (a kept one) and wait for the rollout."""
        operation = f"rollback to {to.version}"
        deployment = self._deployment(operation)
        if version_of(deployment) == to.version:
            self.cluster.wait(self.app)
            return
        kept = [k.version for k in kept_templates(deployment)]
        if to.version not in kept:
            raise DeployError(
                f"{operation}: Deployment {self.app} keeps the templates of {', '.join(kept) or 'no release'} "
                f"to return to; use `kubectl rollout undo deployment/{self.app} --to-revision=N -n "
                f"{self.cluster.namespace}` for older ones",
                platform=PLATFORM,
                operation="rollback",
            )
        self._restore(operation, to.version)
        self.cluster.wait(self.app)

    def confirm_rollback(self, healthy: bool) -> None:
        """Rollback is a plain template restore here: nothing to commit or revert."""

    def retire(self, keep: int) -> list[str]:
        """Forget kept templates beyond the newest `keep` (Kubernetes prunes old ReplicaSets itself)."""
        deployment = self.api.get_deployment(self.app)
        kept = kept_templates(deployment) if deployment is not None else []
        if len(kept) <= keep:
            return []

        def trim(current: dict[str, Any]) -> dict[str, Any]:
            out = dict(current)
            out["metadata"] = dict(current["metadata"])
            annotations = dict(current["metadata"].get("annotations") or {})
            with_kept(annotations, kept_templates(current)[:keep])
            annotations[RUN_ANNOTATION] = self.cluster.run.annotation()
            out["metadata"]["annotations"] = annotations
            return out

        self.cluster.update_deployment(self.app, trim)
        return [k.version for k in kept[keep:]]

    def stop(self, version: str) -> None:
        """If the template still runs the aborted `version`, put the newest kept one back. Idempotent."""
        deployment = self.api.get_deployment(self.app)
        if deployment is not None and version_of(deployment) == version and kept_templates(deployment):
            self._restore(f"stop {version}")

    # --- internals ------------------------------------------------------------------------------

    def _deployment(self, operation: str) -> dict[str, Any]:
        deployment = self.api.get_deployment(self.app)
        if deployment is None:
            raise DeployError(
                f"{operation}: Deployment {self.app} not found in namespace {self.cluster.namespace}; the rolling "
                "strategy updates an existing Deployment, create it first",
                platform=PLATFORM,
                operation=operation,
            )
        return deployment

    def _unpin_service(self, operation: str) -> None:
        """A rolling update's new pods carry the new version label: a Service pinned to the old one
        (left by a blue/green deploy) would never send them traffic. Widen it to the app, unless other
        releases still run pods that the wider selector would then pick too."""
        service = self.cluster.main_service(operation)
        if VERSION_LABEL not in (service["spec"].get("selector") or {}):
            return
        others = [
            d["metadata"]["name"]
            for d in self.api.list_deployments(f"{NAME_LABEL}={self.app}")
            if d["metadata"]["name"] != self.app and int(d["spec"].get("replicas", 1)) > 0
        ]
        if others:
            raise DeployError(
                f"{operation}: Service {self.app} selects one version and Deployments {', '.join(sorted(others))} "
                "of earlier blue/green releases still run pods; scale them to 0 (or retire them) before switching "
                "this app to the rolling strategy",
                platform=PLATFORM,
                operation=operation,
            )
        self.cluster.update_service(self.app, lambda s: with_selector(s, None, self.cluster.run))
        log.info("Service %s now selects every pod of %s, whatever its version", self.app, self.app)

    def _restore(self, operation: str, to: str | None = None) -> None:
        def change(current: dict[str, Any]) -> dict[str, Any]:
            back = restored(current, self.cluster.run, to)
            if back is None:
                raise DeployError(
                    f"{operation}: Deployment {self.app} keeps no template of {to or 'an earlier release'}",
                    platform=PLATFORM,
                    operation=operation,
                )
            return back

        self.cluster.update_deployment(self.app, change)

    def _undo(self, version: str) -> str:
        try:
            deployment = self.api.get_deployment(self.app)
            kept = kept_templates(deployment) if deployment else []
            previous = kept[0].version if kept else None
            if deployment is None or version_of(deployment) != version or not previous:
                return "nothing to restore"
            self._restore(f"undo {version}")
        except DeployError as undo_error:
            log.error("could not restore the previous template of %s: %s", self.app, undo_error)
            return f"restoring the previous template failed too ({undo_error}); run `kubectl rollout undo`"
        return f"the previous template ({previous}) was restored; its pods kept serving throughout"

    def _release(self, deployment: dict[str, Any], *, url: str | None = None) -> Release:
        return Release(
            version=version_of(deployment) or self.app,
            url=url,
            image=image_of(deployment, self.cluster.container),
            ref=self.app,
        )
