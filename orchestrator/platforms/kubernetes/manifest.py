"""What we write to the cluster, computed as plain data (no API calls here).

Conventions (the contract with the user's manifests):
- The application is the Deployment `<name>` (`deployment_config.k8s_deployment`) in
  `deployment_config.k8s_namespace`, and a Service `<name>` selects its pods.
- Every pod we run carries `deploy-orchestrator/version=<version>`; Deployments we create also carry
  `app.kubernetes.io/name=<name>` (how releases are found) and
  `app.kubernetes.io/managed-by=deploy-orchestrator`.
- Every strategy runs each release as its own Deployment `<name>-<version>`, a copy of the live pod
  template with the new image and version label. The main Service's selector keeps its own keys
  and gains (one release at 100%) or loses (a split over several) the version key.
- `<name>-preview` is a Service selecting only the newest release, for checks before it gets traffic.
- Each object we write is annotated like Azure/k8s-deploy does (`actions.github.com/k8s-deploy`:
  run, repository, workflow, commit, runUri), plus when its release started.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MANAGED_LABEL",
    "NAME_LABEL",
    "RUN_ANNOTATION",
    "STARTED_ANNOTATION",
    "TOTAL_ANNOTATION",
    "VERSION_LABEL",
    "RunInfo",
    "for_update",
    "image_of",
    "label_value_problem",
    "preview_name",
    "preview_service",
    "proxy_path",
    "release_deployment",
    "release_name",
    "replica_split",
    "service_port",
    "version_of",
    "with_image",
    "with_selector",
]

NAME_LABEL = "app.kubernetes.io/name"
MANAGED_LABEL = "app.kubernetes.io/managed-by"
MANAGER = "deploy-orchestrator"
VERSION_LABEL = "deploy-orchestrator/version"
RUN_ANNOTATION = "actions.github.com/k8s-deploy"
STARTED_ANNOTATION = "deploy-orchestrator/started-at"
TOTAL_ANNOTATION = "deploy-orchestrator/replicas"
"""The replica count the release serves with at 100% (canary scales below it on the way)."""
_DNS_LABEL_MAX = 63
_LABEL_VALUE = re.compile(r"^(?:(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Who deployed: the GitHub Actions run, written on every object we touch."""

    run: str = ""
    repository: str = ""
    workflow: str = ""
    commit: str = ""
    run_uri: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunInfo:
        run, repo, server = env.get("GITHUB_RUN_ID", ""), env.get("GITHUB_REPOSITORY", ""), env.get("GITHUB_SERVER_URL")
        uri = f"{server or 'https://github.com'}/{repo}/actions/runs/{run}" if run and repo else ""
        return cls(run, repo, env.get("GITHUB_WORKFLOW", ""), env.get("GITHUB_SHA", ""), uri)

    def annotation(self) -> str:
        doc = {
            "run": self.run,
            "repository": self.repository,
            "workflow": self.workflow,
            "commit": self.commit,
            "runUri": self.run_uri,
            "provider": "GitHub" if self.run else "deploy-orchestrator",
        }
        return json.dumps(doc, separators=(",", ":"))


def label_value_problem(value: str) -> str | None:
    """Why `value` cannot be a label value on the API server (None when it can): at most 63
    characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit."""
    if len(value) > _DNS_LABEL_MAX:
        return f"{len(value)} characters, above the 63 a label value may have"
    if not _LABEL_VALUE.match(value):
        return "a label value holds only letters, digits, '-', '_' and '.', and starts and ends with a letter or digit"
    return None


def release_name(app: str, version: str) -> str:
    """`<app>-<version>` as a DNS-1123 label; too long or unusual versions get a hash suffix."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", version.lower()).strip("-")
    name = f"{app}-{cleaned}"
    if cleaned == version and len(name) <= _DNS_LABEL_MAX:
        return name
    digest = hashlib.sha256(version.encode()).hexdigest()[:8]
    return f"{name[: _DNS_LABEL_MAX - 9].rstrip('-')}-{digest}"


def preview_name(app: str) -> str:
    return f"{app}-preview"


def version_of(deployment: Mapping[str, Any]) -> str | None:
    labels = ((deployment.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
    version = labels.get(VERSION_LABEL)
    return str(version) if version else None


def image_of(deployment: Mapping[str, Any], container: str | None = None) -> str | None:
    containers = _containers(deployment.get("spec", {}).get("template", {}))
    chosen = _pick(containers, container)
    return str(chosen["image"]) if chosen and chosen.get("image") else None


def with_image(template: Mapping[str, Any], version: str, image: str | None, container: str | None) -> dict[str, Any]:
    """A pod template with the version label set and (when given) the app container's image replaced."""
    out = copy.deepcopy(dict(template))
    labels = out.setdefault("metadata", {}).setdefault("labels", {})
    labels[VERSION_LABEL] = version
    if image:
        chosen = _pick(_containers(out), container)
        if chosen is None:
            raise ValueError("the pod template has no containers")
        chosen["image"] = image
    return out


def release_deployment(
    live: Mapping[str, Any],
    *,
    app: str,
    version: str,
    image: str | None,
    replicas: int,
    total: int,
    container: str | None,
    run: RunInfo,
    started_at: str,
    progress_deadline: int,
) -> dict[str, Any]:
    """The Deployment `<app>-<version>`: the live pod template with the new image and version label."""
    spec = live.get("spec") or {}
    template = with_image(spec.get("template") or {}, version, image, container)
    template["metadata"]["labels"][NAME_LABEL] = template["metadata"]["labels"].get(NAME_LABEL, app)
    labels = template["metadata"]["labels"]
    # The live selector's keys the template really carries, plus the version: release Deployments
    # must not select each other's pods.
    match_labels = {
        k: v for k, v in ((spec.get("selector") or {}).get("matchLabels") or {}).items() if labels.get(k) == v
    }
    match_labels[VERSION_LABEL] = version
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": release_name(app, version),
            "labels": {NAME_LABEL: app, MANAGED_LABEL: MANAGER, VERSION_LABEL: version},
            "annotations": {
                RUN_ANNOTATION: run.annotation(),
                STARTED_ANNOTATION: started_at,
                TOTAL_ANNOTATION: str(total),
            },
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": match_labels},
            "template": template,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "progressDeadlineSeconds": progress_deadline,
            "revisionHistoryLimit": spec.get("revisionHistoryLimit", 10),
        },
    }


def preview_service(main: Mapping[str, Any], *, app: str, version: str, run: RunInfo) -> dict[str, Any]:
    """`<app>-preview`: the main Service's ports, selecting only `version`'s pods."""
    spec = main.get("spec") or {}
    ports = [{k: v for k, v in p.items() if k != "nodePort"} for p in spec.get("ports") or []]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": preview_name(app),
            "labels": {NAME_LABEL: app, MANAGED_LABEL: MANAGER, VERSION_LABEL: version},
            "annotations": {RUN_ANNOTATION: run.annotation()},
        },
        "spec": {"type": "ClusterIP", "ports": ports, "selector": with_version(spec.get("selector") or {}, version)},
    }


def with_version(selector: Mapping[str, str], version: str | None) -> dict[str, str]:
    """The selector pinned to `version`'s pods, or (None) to every release's pods."""
    out = {k: v for k, v in selector.items() if k != VERSION_LABEL}
    if version is not None:
        out[VERSION_LABEL] = version
    return out


def with_selector(service: Mapping[str, Any], version: str | None, run: RunInfo) -> dict[str, Any]:
    """The Service document (resourceVersion kept, for an optimistic-concurrency replace) with its
    selector pinned to `version` (None: widened to every release, for a canary split)."""
    out = for_update(service)
    out["spec"]["selector"] = with_version(out["spec"].get("selector") or {}, version)
    out["metadata"].setdefault("annotations", {})[RUN_ANNOTATION] = run.annotation()
    return out


def replica_split(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Weights (percent) as replica counts: the newest (last) release gets round-half-up of its share,
    at least 1 while its weight is above 0; every other release with weight keeps at least 1 pod.

    The granularity is therefore 100/total percent: with 4 replicas, 10% becomes 1 pod of 4 (25%).
    While both sides need a pod and total is 1, the split briefly runs 2 pods (1 + 1).
    """
    versions = list(weights)
    if not versions:
        return {}
    new = versions[-1]
    out: dict[str, int] = {}
    share = weights[new]
    out[new] = total if share >= 100 else (max(1, (total * share + 50) // 100) if share > 0 else 0)
    rest = total - out[new]
    others = [v for v in versions[:-1] if weights[v] > 0]
    weight_sum = sum(weights[v] for v in others)
    counts = {v: rest * weights[v] // weight_sum for v in others}
    if others:
        counts[others[0]] += rest - sum(counts.values())
    for version in others:
        out[version] = max(1, counts[version])
    for version in versions[:-1]:
        out.setdefault(version, 0)
    return out


def service_port(service: Mapping[str, Any]) -> str:
    """The Service port the proxy path names: the first port's name, else its number."""
    ports = (service.get("spec") or {}).get("ports") or []
    if not ports:
        raise ValueError("the Service has no ports")
    first = ports[0]
    return str(first.get("name") or first.get("port"))


def proxy_path(namespace: str, service: str, port: str) -> str:
    """The API server's service-proxy path (ends with `/`: request paths are appended to it)."""
    return f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/"


def for_update(live: Mapping[str, Any]) -> dict[str, Any]:
    """A live object as the body of a replace: what the server owns (`status`, `managedFields`) left
    out, `resourceVersion` kept for optimistic concurrency. Sending managed fields back would replace
    the server's record of who owns which field with our stale copy."""
    out = copy.deepcopy(dict(live))
    out.pop("status", None)
    out.setdefault("metadata", {}).pop("managedFields", None)
    return out


def _containers(template: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(((template.get("spec") or {}).get("containers")) or [])


def _pick(containers: list[dict[str, Any]], name: str | None) -> dict[str, Any] | None:
    if name is not None:
        for container in containers:
            if container.get("name") == name:
                return container
    return containers[0] if containers else None
