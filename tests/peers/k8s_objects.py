"""What the API server does to a Deployment or Service on its way into storage: defaults, validation,
system metadata, managed fields, and its `Status` answers.

The defaults are the built-in types' own (`pkg/apis/apps/v1/defaults.go`, `pkg/apis/core/v1/defaults.go`):
a client reading an object back sees every one of them, so a client copying a live object sees
exactly what it would see on a real cluster.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.peers.k8s_selectors import labels_match

__all__ = [
    "KINDS",
    "ApiError",
    "default",
    "field_set",
    "managed_entry",
    "resource",
    "scale_of",
    "status_doc",
    "timestamp",
    "validate",
]

KINDS = {"deployments": ("apps/v1", "Deployment"), "services": ("v1", "Service")}
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_ANNOTATIONS_MAX = 256 * 1024
_PROBE_DEFAULTS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
_USER_MAPS = ("labels", "annotations", "matchLabels", "selector", "ports", "containers", "env", "volumes")
_MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name", "ports": None}


class ApiError(Exception):
    def __init__(self, code: int, status: dict[str, Any]) -> None:
        super().__init__(status.get("message"))
        self.code = code
        self.status = status


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def resource(kind: str) -> str:
    return "deployments.apps" if kind == "deployments" else kind


def status_doc(
    code: int, reason: str, message: str, name: str = "", kind: str = "", causes: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": kind} if name else {}
    if name and kind == "deployments":
        details["group"] = "apps"
    if causes:
        details["causes"] = causes
    doc: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    doc.update(message=message, reason=reason, code=code)
    if details:
        doc["details"] = details
    return doc


def default(kind: str, obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    if kind == "deployments":
        spec.setdefault("replicas", 1)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        _default_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))
        return
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("clusterIP", f"10.96.{uuid.uuid4().int % 250 + 1}.{uuid.uuid4().int % 250 + 1}")
        spec.setdefault("clusterIPs", [spec["clusterIP"]] if spec["clusterIP"] != "None" else ["None"])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if spec["type"] == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
        if spec["type"] in ("NodePort", "LoadBalancer"):
            port.setdefault("nodePort", 30000 + uuid.uuid4().int % 2767)


def _default_pod_spec(pod: dict[str, Any]) -> None:
    pod.setdefault("restartPolicy", "Always")
    pod.setdefault("terminationGracePeriodSeconds", 30)
    pod.setdefault("dnsPolicy", "ClusterFirst")
    pod.setdefault("securityContext", {})
    pod.setdefault("schedulerName", "default-scheduler")
    for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        image = str(container.get("image") or "")
        tag = image.rsplit("/", 1)[-1]
        latest = "@" not in tag and (":" not in tag or tag.endswith(":latest"))
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")
        for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
            probe = container.get(probe_name)
            if isinstance(probe, dict):
                for key, value in _PROBE_DEFAULTS.items():
                    probe.setdefault(key, value)
                if isinstance(probe.get("httpGet"), dict):
                    probe["httpGet"].setdefault("scheme", "HTTP")
        for env in container.get("env") or []:
            field_ref = (env.get("valueFrom") or {}).get("fieldRef")
            if isinstance(field_ref, dict):
                field_ref.setdefault("apiVersion", "v1")
    for volume in pod.get("volumes") or []:
        for source in ("configMap", "secret"):
            if isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 420)


def validate(kind: str, obj: dict[str, Any], current: dict[str, Any] | None) -> None:
    """Raise ApiError 422 Invalid (the API server's wording) when the object may not be stored."""
    name = obj["metadata"].get("name", "")
    spec = obj["spec"]
    problems: list[tuple[str, str]] = []
    if kind == "deployments":
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector:
            problems.append(("spec.selector", "Required value"))
        elif not labels_match(selector, labels):
            problems.append(
                ("spec.template.metadata.labels", "Invalid value: `selector` does not match template `labels`")
            )
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        if not containers:
            problems.append(("spec.template.spec.containers", "Required value"))
        for i, container in enumerate(containers):
            if not container.get("image"):
                problems.append((f"spec.template.spec.containers[{i}].image", "Required value"))
        if current is not None and spec.get("selector") != current["spec"].get("selector"):
            problems.append(("spec.selector", "Invalid value: field is immutable"))
        rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        if rolling.get("maxUnavailable") in (0, "0", "0%") and rolling.get("maxSurge") in (0, "0", "0%"):
            problems.append(("spec.strategy.rollingUpdate.maxUnavailable", "may not be 0 when `maxSurge` is 0"))
        if int(spec.get("replicas", 1)) < 0:
            problems.append(("spec.replicas", "Invalid value: must be greater than or equal to 0"))
    else:
        ports = spec.get("ports") or []
        if not ports and spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
            problems.append(("spec.ports", "Required value"))
        if len(ports) > 1 and any(not p.get("name") for p in ports):
            problems.append(("spec.ports[1].name", "Required value"))
        if current is not None and spec.get("clusterIP") != current["spec"].get("clusterIP"):
            problems.append(("spec.clusterIP", f'Invalid value: "{spec.get("clusterIP")}": field is immutable'))
    problems += _metadata_problems(kind, obj)
    if problems:
        kind_name = "Deployment.apps" if kind == "deployments" else "Service"
        message = f'{kind_name} "{name}" is invalid: ' + ", ".join(f"{f}: {m}" for f, m in problems)
        causes = [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in problems]
        raise ApiError(422, status_doc(422, "Invalid", message, name, kind, causes))


def _metadata_problems(kind: str, obj: dict[str, Any]) -> list[tuple[str, str]]:
    """Names, label keys and values, and the annotations' size, as `ValidateObjectMeta` checks them."""
    problems: list[tuple[str, str]] = []
    name = str(obj["metadata"].get("name") or "")
    if kind == "services" and not (len(name) <= 63 and _DNS_1035_LABEL.match(name)):
        problems.append(
            (
                "metadata.name",
                f'Invalid value: "{name}": a DNS-1035 label must consist of lower case '
                "alphanumeric characters or '-', start with an alphabetic character, and end with an "
                "alphanumeric character",
            )
        )
    if kind == "deployments" and not (len(name) <= 253 and _DNS_SUBDOMAIN.match(name)):
        problems.append(
            (
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of '
                "lower case alphanumeric characters, '-' or '.'",
            )
        )
    spec = obj.get("spec") or {}
    label_maps = {
        "metadata.labels": obj["metadata"].get("labels"),
        "spec.selector" if kind == "services" else "spec.selector.matchLabels": spec.get("selector")
        if kind == "services"
        else (spec.get("selector") or {}).get("matchLabels"),
        "spec.template.metadata.labels": ((spec.get("template") or {}).get("metadata") or {}).get("labels"),
    }
    for where, labels in label_maps.items():
        for key, value in (labels or {}).items():
            prefix, _, short = str(key).rpartition("/")
            if not (len(short) <= 63 and _QUALIFIED_NAME.match(short)) or (prefix and not _DNS_SUBDOMAIN.match(prefix)):
                problems.append((where, f'Invalid value: "{key}": name part must consist of alphanumeric characters'))
            if not (len(str(value)) <= 63 and _LABEL_VALUE.match(str(value))):
                problems.append(
                    (
                        f"{where}",
                        f'Invalid value: "{value}": a valid label must be an empty string or '
                        "consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                        "an alphanumeric character (at most 63 characters)",
                    )
                )
    for where, meta in (
        ("metadata", obj["metadata"]),
        ("spec.template.metadata", (spec.get("template") or {}).get("metadata")),
    ):
        size = sum(len(k) + len(str(v)) for k, v in ((meta or {}).get("annotations") or {}).items())
        if size > _ANNOTATIONS_MAX:
            problems.append((f"{where}.annotations", f"Too long: must have at most {_ANNOTATIONS_MAX} bytes"))
    return problems


def field_set(value: Any, key: str | None = None) -> dict[str, Any]:
    """The `FieldsV1` set of the fields a document sets (maps as `f:<name>`, keyed lists as `k:{...}`)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {".": {}} if key in _USER_MAPS else {}
        for name, item in value.items():
            out[f"f:{name}"] = field_set(item, name)
        return out
    if isinstance(value, list) and key in _MERGE_KEYS and all(isinstance(i, dict) for i in value):
        out = {".": {}}
        for item in value:
            merge_key = _MERGE_KEYS[key] or ("containerPort" if "containerPort" in item else "port")
            identity = {merge_key: item.get(merge_key)}
            if key == "ports" and "protocol" in item:
                identity["protocol"] = item["protocol"]
            entry = {".": {}, **field_set(item, merge_key)}
            out["k:" + json.dumps(identity, separators=(",", ":"), sort_keys=True)] = entry
        return out
    return {}


def managed_entry(
    manager: str, operation: str, api_version: str, fields: dict[str, Any], subresource: str | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": timestamp(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if subresource:
        entry["subresource"] = subresource
    return entry


def owned_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The fields a writer of `obj` set, minus what the server owns (status and system metadata)."""
    doc = copy.deepcopy({k: v for k, v in obj.items() if k not in ("status", "apiVersion", "kind")})
    metadata = doc.get("metadata") or {}
    for system in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "namespace", "name"):
        metadata.pop(system, None)
    if not metadata:
        doc.pop("metadata", None)
    return field_set(doc)


def scale_of(deployment: dict[str, Any]) -> dict[str, Any]:
    """The Deployment's autoscaling/v1 Scale: its replicas, and its pods' selector as a string."""
    metadata = deployment["metadata"]
    selector = (deployment["spec"].get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: metadata[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
        "spec": {"replicas": int(deployment["spec"].get("replicas", 1))},
        "status": {
            "replicas": int((deployment.get("status") or {}).get("replicas") or 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        },
    }
