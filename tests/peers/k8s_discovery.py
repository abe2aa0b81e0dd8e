"""What the emulator says about itself: the discovery documents (`/api`, `/api/v1`, `/apis`,
`/apis/apps/v1`, `/version`) and the server-side printing `kubectl get` asks for (a `meta.k8s.io/v1`
Table with the columns the real API server prints for Deployments and Services).

Only what the emulator serves is advertised: Deployments (with `status` and `scale`), Services
(with `status`), and the Service proxy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["SERVER_VERSION", "discovery", "table"]

SERVER_VERSION = {
    "major": "1",
    "minor": "36",
    "emulationMajor": "1",
    "emulationMinor": "36",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "35",
    "gitVersion": "v1.36.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-04-22T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
# (name, type, format, priority) as the API server's table convertors print them.
_DEPLOYMENT_COLUMNS = (
    ("Name", "string", "name", 0),
    ("Ready", "string", "", 0),
    ("Up-to-date", "integer", "", 0),
    ("Available", "integer", "", 0),
    ("Age", "string", "", 0),
    ("Containers", "string", "", 1),
    ("Images", "string", "", 1),
    ("Selector", "string", "", 1),
)
_SERVICE_COLUMNS = (
    ("Name", "string", "name", 0),
    ("Type", "string", "", 0),
    ("Cluster-IP", "string", "", 0),
    ("External-IP", "string", "", 0),
    ("Port(s)", "string", "", 0),
    ("Age", "string", "", 0),
    ("Selector", "string", "", 1),
)
_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
_STATUS_VERBS = ["get", "patch", "update"]


def _resources(group_version: str) -> dict[str, Any]:
    if group_version == "v1":
        resources = [
            _resource("services", "service", "Service", _VERBS, short=["svc"], categories=["all"]),
            _resource("services/proxy", "", "ServiceProxyOptions", ["create", "delete", "get", "patch", "update"]),
            _resource("services/status", "", "Service", _STATUS_VERBS),
        ]
    else:
        resources = [
            _resource("deployments", "deployment", "Deployment", _VERBS, short=["deploy"], categories=["all"]),
            _resource("deployments/status", "", "Deployment", _STATUS_VERBS),
            {**_resource("deployments/scale", "", "Scale", _STATUS_VERBS), "group": "autoscaling", "version": "v1"},
        ]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def _resource(
    name: str, singular: str, kind: str, verbs: list[str], *, short: list[str] | None = None, categories: Any = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name, "singularName": singular, "namespaced": True, "kind": kind, "verbs": verbs}
    if short:
        doc["shortNames"] = short
    if categories:
        doc["categories"] = categories
    return doc


def discovery(path: str) -> dict[str, Any] | None:
    """The discovery document at `path` (None: not a discovery path)."""
    path = path.rstrip("/")
    if path == "/version":
        return dict(SERVER_VERSION)
    if path == "/api":
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
        }
    if path == "/apis":
        version = {"groupVersion": "apps/v1", "version": "v1"}
        group = {"name": "apps", "versions": [version], "preferredVersion": version}
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}
    if path == "/apis/apps":
        version = {"groupVersion": "apps/v1", "version": "v1"}
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": "apps",
            "versions": [version],
            "preferredVersion": version,
        }
    if path == "/api/v1":
        return _resources("v1")
    if path == "/apis/apps/v1":
        return _resources("apps/v1")
    return None


def table(kind: str, items: list[dict[str, Any]], list_meta: dict[str, Any]) -> dict[str, Any]:
    """The list as `kubectl get` prints it, computed on the server as the API server does."""
    names, cells = (
        (_DEPLOYMENT_COLUMNS, _deployment_cells) if kind == "deployments" else (_SERVICE_COLUMNS, _service_cells)
    )
    columns = [_column(*spec) for spec in names]
    rows = [_row(obj, cells(obj)) for obj in items]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    }


def _column(name: str, kind: str, fmt: str, priority: int) -> dict[str, Any]:
    return {"name": name, "type": kind, "format": fmt, "description": f"{name} of the object", "priority": priority}


def _row(obj: dict[str, Any], cells: list[Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    return {
        "cells": cells,
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata},
    }


def _deployment_cells(deployment: dict[str, Any]) -> list[Any]:
    spec, status = deployment["spec"], deployment.get("status") or {}
    containers = spec["template"]["spec"].get("containers") or []
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).get("matchLabels", {}).items()))
    return [
        deployment["metadata"]["name"],
        f"{int(status.get('readyReplicas') or 0)}/{int(spec.get('replicas', 1))}",
        int(status.get("updatedReplicas") or 0),
        int(status.get("availableReplicas") or 0),
        _age(deployment),
        ",".join(c["name"] for c in containers),
        ",".join(str(c.get("image", "")) for c in containers),
        selector,
    ]


def _service_cells(service: dict[str, Any]) -> list[Any]:
    spec = service["spec"]
    ports = ",".join(
        f"{p['port']}:{p['nodePort']}/{p.get('protocol', 'TCP')}"
        if p.get("nodePort")
        else f"{p['port']}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())) or "<none>"
    return [
        service["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP", "<none>"),
        "<none>",
        ports or "<none>",
        _age(service),
        selector,
    ]


def _age(obj: dict[str, Any]) -> str:
    """`duration.HumanDuration` of the object's age, as kubectl shows it."""
    created = datetime.strptime(obj["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(int((datetime.now(UTC) - created).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    return f"{hours}h" if hours < 48 else f"{hours // 24}d"
