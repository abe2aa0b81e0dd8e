"""Kubernetes: one Deployment per release, traffic moved by the Service selector and replica counts.

One adapter whatever the strategy: it is a `TrafficRouter` (with `Retirement`), and the plan decides
what it is asked to do. Blue/green asks for one switch, canary and rolling for splits.

- `start(v)` creates `<app>-<v>` (the live pod template, new image, version label), waits for its
  rollout, and points the preview Service `<app>-preview` at it; the returned `Release.url` is that
  Service through the API server's service proxy, so pre-switch checks reach only the new pods.
- blue/green `route({v: 100})` replaces the main Service's selector with one pinned to `v`'s version
  label: one write, so every new connection after it goes to `v` (kube-proxy and the endpoints
  controller apply it within their own propagation delay). The old Deployment stays at full size
  for an instant switch back, until `retire`.
- a split is realised as replica counts (`manifest.replica_split`): the new release is scaled up
  first, then the selector is widened to every release of the app, then the old one is scaled down.
  Granularity is 100/replicas percent (4 replicas: 25% steps; a 10% step runs 1 of 4 pods), which
  `traffic_shape` tells the plan, so the plan states the share it really gets. At 100% the selector
  is pinned to the new version; releases a split had shrunk are scaled to 0 but kept, so a rollback
  scales one back up (waiting for its rollout) before pinning the selector to it. A release at full
  size (the old one after a blue/green switch) stays up for an instant switch back.
- `start_sized(v, weight)` starts a release with the pods for its first share when another release
  serves (1 of 4 for a 10% or 25% first step), at full size otherwise.
- `rollback(to)` is `route({to: 100})`, scaling `to` back up first when needed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from orchestrator.errors import DeployError
from orchestrator.platforms.base import Release, TrafficShape

from .api import PLATFORM, ConflictError
from .cluster import Cluster, now_iso
from .manifest import (
    NAME_LABEL,
    TOTAL_ANNOTATION,
    VERSION_LABEL,
    for_update,
    image_of,
    preview_name,
    preview_service,
    release_deployment,
    release_name,
    replica_split,
    version_of,
    with_image,
    with_selector,
)
from .releases import RETIRED_ANNOTATION, refuse_live_image_change, template_source
from .releases import is_retired as _is_retired
from .releases import notes_of as _annotations
from .releases import release as _release
from .releases import replicas as _replicas
from .releases import serving as _serving
from .releases import started as _started
from .releases import total as _total

__all__ = ["RETIRED_ANNOTATION", "KubernetesPlatform"]

log = logging.getLogger(__name__)


class KubernetesPlatform:
    """One Deployment per release of the app `cluster.app`. See the module docstring."""

    name = "kubernetes"

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.api = cluster.api
        self.app = cluster.app

    # --- read-only ------------------------------------------------------------------------------

    def live(self) -> Release | None:
        """The release the main Service sends traffic to (during a canary split: the larger side)."""
        service = self.api.get_service(self.app)
        if service is None:
            return None
        serving = _serving(service, self._deployments())
        if not serving:
            return None
        return _release(max(serving, key=lambda d: (_replicas(d), _started(d))))

    def live_url(self) -> str:
        return self.cluster.live_url()

    def releases(self) -> list[Release]:
        """Every release with a Deployment that was not retired, newest first, the live one included."""
        kept: list[Release] = []
        for deployment in sorted(self._deployments(), key=_started, reverse=True):
            if _is_retired(deployment) or version_of(deployment) is None:
                continue
            release = _release(deployment)
            if all(r.version != release.version for r in kept):
                kept.append(release)
        return kept

    # --- deploy ---------------------------------------------------------------------------------

    def start(self, version: str, image: str | None) -> Release:
        """`start_sized` for all the traffic: the release comes up at full size."""
        return self.start_sized(version, image, 100)

    def traffic_shape(self) -> TrafficShape:
        """Splits go by whole pods of the live release's size. Read-only."""
        service = self.api.get_service(self.app)
        deployments = self._deployments()
        serving = _serving(service, deployments) if service is not None else []
        source = serving or [d for d in deployments if d["metadata"]["name"] == self.app]
        return TrafficShape(replicas=max((_total(d) for d in source), default=1), exact=False)

    def start_sized(self, version: str, image: str | None, weight: int) -> Release:
        """Run `version` as Deployment `<app>-<version>` without traffic and wait for its rollout.
        Idempotent per version. First pins a main Service that selects the app only to the live
        version, so the new pods get no traffic before the switch; refuses a new image under a version
        label that serves traffic. Raises DeployError naming the Deployment and the failed condition."""
        operation = f"start {version}"
        self.cluster.require_version_label(version, operation)
        main = self.cluster.main_service(operation)
        deployments = self._deployments()
        source = template_source(main, deployments, self.cluster, operation)
        total = _total(source)
        replicas = max(1, (total * weight + 50) // 100) if weight < 100 and _serving(main, deployments) else total
        name = release_name(self.app, version)
        refuse_live_image_change(main, deployments, version, image, self.cluster.container, operation)
        main = self._pin_live(main, deployments, source, version, operation)
        existing = self.api.get_deployment(name)
        if existing is None:
            body = release_deployment(
                source,
                app=self.app,
                version=version,
                image=image,
                replicas=replicas,
                total=total,
                container=self.cluster.container,
                run=self.cluster.run,
                started_at=now_iso(),
                progress_deadline=self.cluster.timing.progress_deadline_seconds,
            )
            try:
                self.api.create_deployment(body)
            except ConflictError as exc:
                # An earlier attempt went through after all (or a concurrent run made it).
                if exc.reason != "AlreadyExists":
                    raise
                existing = self.api.get_deployment(name)
        if existing is not None:
            if any(d["metadata"]["name"] == name for d in _serving(main, deployments)):
                # Live pods are never rewritten (checked above): a re-run keeps the image they run,
                # and the share of traffic it has.
                wanted = image_of(existing, self.cluster.container)
                replicas = _replicas(existing)
            else:
                wanted = image or image_of(source, self.cluster.container)
            self._refresh(existing, version, wanted, replicas, operation)
        log.info("waiting for deployment %s to roll out", name)
        deployment = self.cluster.wait(name)
        preview = self._point_preview(main, version)
        return Release(version, url=self.cluster.service_url(preview), image=image_of(deployment), ref=name)

    def route(self, weights: Mapping[str, int]) -> None:
        """Blue/green: `{v: 100}` pins the main Service's selector to `v`. Canary: a split becomes
        replica counts under a selector spanning the releases. Idempotent. Raises DeployError."""
        targets = {v: w for v, w in weights.items() if w > 0}
        if sum(targets.values()) != 100 or not targets:
            raise DeployError(
                f"route {dict(weights)}: weights must add up to 100", platform=PLATFORM, operation="route"
            )
        deployments = self._deployments()
        by_version = self._by_version(deployments, list(targets), "route")
        if len(targets) == 1:
            self._switch(next(iter(targets)), by_version, deployments)
            return
        self._split(dict(weights), by_version, deployments)

    # --- rollback -------------------------------------------------------------------------------

    def rollback(self, to: Release) -> None:
        """Send all traffic back to `to`, scaling it back up first when a canary scaled it down."""
        deployments = self._deployments()
        by_version = self._by_version(deployments, [to.version], f"rollback to {to.version}")
        self._switch(to.version, by_version, deployments)

    def retire(self, keep: int) -> list[str]:
        """Delete our Deployments of releases beyond the newest `keep` without traffic; the original
        Deployment `<app>` (the user's own object) is scaled to 0 and marked retired instead."""
        service = self.cluster.main_service("retire")
        deployments = self._deployments()
        serving = {version_of(d) for d in _serving(service, deployments)}
        idle = [d for d in sorted(deployments, key=_started, reverse=True) if version_of(d) not in serving]
        idle = [d for d in idle if not _is_retired(d)]
        retired: list[str] = []
        for deployment in idle[max(keep, 0) :]:
            self._remove(deployment)
            retired.append(version_of(deployment) or deployment["metadata"]["name"])
        return retired

    def stop(self, version: str) -> None:
        """Remove a release that has no traffic (an aborted one). Idempotent; refuses the live one."""
        service = self.api.get_service(self.app)
        deployments = [d for d in self._deployments() if version_of(d) == version]
        if service is not None and any(d in _serving(service, deployments) for d in deployments):
            raise DeployError(
                f"stop {version}: the main Service {self.app} still sends traffic to it; route traffic away first",
                platform=PLATFORM,
                operation="stop",
            )
        for deployment in deployments:
            self._remove(deployment)
        preview = self.api.get_service(preview_name(self.app))
        if preview is not None and (preview.get("spec") or {}).get("selector", {}).get(VERSION_LABEL) == version:
            self.api.delete_service(preview_name(self.app))

    # --- internals ------------------------------------------------------------------------------

    def _deployments(self) -> list[dict[str, Any]]:
        """Our release Deployments (by label) plus the user's original Deployment `<app>`."""
        found = {d["metadata"]["name"]: d for d in self.api.list_deployments(f"{NAME_LABEL}={self.app}")}
        if self.app not in found:
            base = self.api.get_deployment(self.app)
            if base is not None:
                found[self.app] = base
        return list(found.values())

    def _pin_live(
        self,
        main: dict[str, Any],
        deployments: list[dict[str, Any]],
        source: dict[str, Any],
        version: str,
        operation: str,
    ) -> dict[str, Any]:
        """Make sure the main Service selects one version before `version`'s pods exist: a selector of
        the app only (as a rolling deploy leaves it) would send them live traffic as soon as they are
        ready, before any pre-switch check. Pins it to the live version; returns the Service."""
        selector = main["spec"].get("selector") or {}
        if not selector or VERSION_LABEL in selector:
            return main
        serving = {version_of(d) for d in _serving(main, deployments)}
        if version in serving:
            return main  # a re-run of start during a canary split: `version` already has its share
        live = version_of(source)
        if len(serving) > 1 or live is None or (serving and serving != {live}):
            shown = ", ".join(sorted(v or "(unlabelled)" for v in serving))
            patch = json.dumps({"spec": {"selector": {VERSION_LABEL: "<live version>"}}})
            raise DeployError(
                f"{operation}: Service {self.app} selects pods of every release of the app (releases {shown} "
                f"serve now), so the new pods would get live traffic as soon as they are ready; route 100% to one "
                f"release first, or pin the Service to the live one: kubectl patch service {self.app} -n "
                f"{self.cluster.namespace} -p '{patch}'",
                platform=PLATFORM,
                operation=operation,
            )

        def pin(current: dict[str, Any]) -> dict[str, Any]:
            if VERSION_LABEL in ((current.get("spec") or {}).get("selector") or {}):
                return current  # pinned meanwhile by someone else
            return with_selector(current, live, self.cluster.run)

        pinned = self.cluster.update_service(self.app, pin)
        log.info("Service %s now selects only the live release %s, before %s starts", self.app, live, version)
        return pinned

    def _refresh(
        self, existing: dict[str, Any], version: str, image: str | None, replicas: int, operation: str
    ) -> None:
        """Make an existing `<app>-<version>` run `image` with at least `replicas` (a re-run of start)."""
        if version_of(existing) != version:
            raise DeployError(
                f"{operation}: Deployment {existing['metadata']['name']} exists but runs version "
                f"{version_of(existing)}; delete it or pick another version label",
                platform=PLATFORM,
                operation=operation,
            )
        if image_of(existing, self.cluster.container) == image and _replicas(existing) >= replicas:
            if _is_retired(existing):
                self.api.scale_deployment(existing["metadata"]["name"], replicas, {RETIRED_ANNOTATION: None})
            return

        def change(current: dict[str, Any]) -> dict[str, Any]:
            out = for_update(current)
            spec = dict(out["spec"])
            spec["template"] = with_image(spec["template"], version, image, self.cluster.container)
            spec["replicas"] = max(replicas, int(spec.get("replicas", 1)))
            out["spec"] = spec
            notes = dict(out["metadata"].get("annotations") or {})
            notes.pop(RETIRED_ANNOTATION, None)
            out["metadata"] = {**out["metadata"], "annotations": notes}
            return out

        self.cluster.update_deployment(existing["metadata"]["name"], change)

    def _point_preview(self, main: dict[str, Any], version: str) -> dict[str, Any]:
        wanted = preview_service(main, app=self.app, version=version, run=self.cluster.run)
        name = wanted["metadata"]["name"]
        if self.api.get_service(name) is None:
            try:
                return self.api.create_service(wanted)
            except ConflictError as exc:
                if exc.reason != "AlreadyExists":
                    raise

        def change(current: dict[str, Any]) -> dict[str, Any]:
            out = for_update(current)
            out["spec"] = {**out["spec"], "selector": wanted["spec"]["selector"], "ports": wanted["spec"]["ports"]}
            out["metadata"] = {**out["metadata"], "labels": wanted["metadata"]["labels"]}
            return out

        return self.cluster.update_service(name, change)

    def _by_version(
        self, deployments: list[dict[str, Any]], versions: list[str], operation: str
    ) -> dict[str, dict[str, Any]]:
        by_version: dict[str, dict[str, Any]] = {}
        for deployment in sorted(deployments, key=_started):
            version = version_of(deployment)
            if version is not None:
                by_version[version] = deployment
        missing = [v for v in versions if v not in by_version]
        if missing:
            kept = ", ".join(sorted(by_version)) or "none"
            raise DeployError(
                f"{operation}: no Deployment of {self.app} runs release {', '.join(missing)} in namespace "
                f"{self.cluster.namespace} (releases there: {kept})",
                platform=PLATFORM,
                operation=operation,
            )
        return by_version

    def _switch(self, version: str, by_version: dict[str, dict[str, Any]], deployments: list[dict[str, Any]]) -> None:
        target = by_version[version]
        self._scale(target, _total(target), wait=True)
        service = self.cluster.main_service(f"route to {version}")
        if (service["spec"].get("selector") or {}).get(VERSION_LABEL) != version:
            self.cluster.update_service(self.app, lambda s: with_selector(s, version, self.cluster.run))
            log.info("Service %s now selects release %s", self.app, version)
        for deployment in deployments:
            shrunk = 0 < _replicas(deployment) < _total(deployment)
            if deployment is not target and shrunk and not _is_retired(deployment):
                self._scale(deployment, 0, wait=False)

    def _split(
        self, weights: dict[str, int], by_version: dict[str, dict[str, Any]], deployments: list[dict[str, Any]]
    ) -> None:
        involved = [by_version[v] for v in weights if v in by_version]
        total = max(_total(d) for d in involved)
        counts = replica_split(total, weights)
        others = [d for d in deployments if all(d is not i for i in involved) and _replicas(d) > 0]
        # Nothing else may run under the app's labels once the selector spans every release.
        for deployment in others:
            self._scale(deployment, 0, wait=False)
        for version, count in counts.items():
            if count > _replicas(by_version[version]):
                self._scale(by_version[version], count, wait=True)
        service = self.cluster.main_service("route")
        if VERSION_LABEL in (service["spec"].get("selector") or {}):
            self.cluster.update_service(self.app, lambda s: with_selector(s, None, self.cluster.run))
        for version, count in counts.items():
            if count < _replicas(by_version[version]):
                self._scale(by_version[version], count, wait=True)
        log.info("canary split %s as replicas %s", weights, counts)

    def _scale(self, deployment: dict[str, Any], replicas: int, *, wait: bool) -> None:
        name = deployment["metadata"]["name"]
        notes: dict[str, str | None] = {}
        if TOTAL_ANNOTATION not in _annotations(deployment):
            # Remember the full size before a canary shrinks it, to scale back to on rollback.
            notes[TOTAL_ANNOTATION] = str(_total(deployment))
        if _is_retired(deployment) and replicas > 0:
            notes[RETIRED_ANNOTATION] = None
        if _replicas(deployment) != replicas or notes:
            self.api.scale_deployment(name, replicas, notes or None)
        if wait:
            self.cluster.wait(name)

    def _remove(self, deployment: dict[str, Any]) -> None:
        name = deployment["metadata"]["name"]
        if name == self.app:
            self.api.scale_deployment(name, 0, {RETIRED_ANNOTATION: now_iso()})
        else:
            self.api.delete_deployment(name)
