"""The emulator answers as a real API server does, and its contract check bites.

Each assertion here is a behaviour of kube-apiserver 1.36 that a client can observe: the defaults
it fills, discovery, selectors, pagination, resource versions, DELETE's answers, watches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.peers import k8s_contract
from tests.peers.k8s_emulator import K8sEmulator

from .conftest import APP, NAMESPACE

pytestmark = pytest.mark.skipif(not k8s_contract.is_available(), reason="Kubernetes OpenAPI description not present")

DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
SERVICES = f"/api/v1/namespaces/{NAMESPACE}/services"


class Raw:
    """Plain HTTPS requests to the emulator, as any client would send them."""

    def __init__(self, emu: K8sEmulator, tmp: Path) -> None:
        self.emu = emu
        self.ca = tmp / "ca.pem"
        self.ca.write_bytes(emu.ca_pem)

    def __call__(self, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.emu.token}", **kwargs.pop("headers", {})}
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
            kwargs["data"] = json.dumps(body)
        return requests.request(method, self.emu.url + path, headers=headers, verify=str(self.ca), timeout=10, **kwargs)


@pytest.fixture
def raw(emu: K8sEmulator, tmp_path: Path) -> Iterator[Raw]:
    yield Raw(emu, tmp_path)


def _deployment(name: str, version: str, **labels: str) -> dict[str, Any]:
    pod_labels = {"app": name, "deploy-orchestrator/version": version}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name, **labels}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "registry.example/web:latest",
                            "ports": [{"containerPort": 8080}],
                            "readinessProbe": {"httpGet": {"path": "/health", "port": 8080}},
                        }
                    ]
                },
            },
        },
    }


def test_a_created_deployment_comes_back_with_every_default_a_real_server_fills(raw: Raw) -> None:
    created = raw("POST", DEPLOYMENTS, _deployment("web", "v1"))
    assert created.status_code == 201
    doc = created.json()
    metadata, spec = doc["metadata"], doc["spec"]
    assert {"uid", "creationTimestamp", "resourceVersion", "managedFields"} <= set(metadata)
    assert metadata["generation"] == 1 and metadata["namespace"] == NAMESPACE
    assert metadata["managedFields"][0]["manager"] == "python-requests"
    assert metadata["managedFields"][0]["fieldsType"] == "FieldsV1"
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10 and spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Always" and pod["dnsPolicy"] == "ClusterFirst"
    assert pod["terminationGracePeriodSeconds"] == 30 and pod["schedulerName"] == "default-scheduler"
    assert pod["securityContext"] == {}
    container = pod["containers"][0]
    assert container["imagePullPolicy"] == "Always"  # the tag is :latest
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File" and container["resources"] == {}
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    probe = container["readinessProbe"]
    assert (probe["periodSeconds"], probe["timeoutSeconds"], probe["httpGet"]["scheme"]) == (10, 1, "HTTP")


def test_the_seeded_objects_carry_the_defaults_and_the_controller_marks_its_work(emu: K8sEmulator) -> None:
    deployment = emu.get("deployments", NAMESPACE, APP)
    service = emu.get("services", NAMESPACE, APP)
    assert deployment is not None and service is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    managers = {(e["manager"], e.get("subresource")) for e in deployment["metadata"]["managedFields"]}
    assert managers == {("kubectl-create", None), ("kube-controller-manager", "status")}
    for condition in deployment["status"]["conditions"]:
        assert condition["lastTransitionTime"] and condition["lastUpdateTime"] and condition["message"]
    spec = service["spec"]
    assert spec["clusterIPs"] == [spec["clusterIP"]] and spec["ipFamilies"] == ["IPv4"]
    assert (spec["ipFamilyPolicy"], spec["sessionAffinity"], spec["internalTrafficPolicy"]) == (
        "SingleStack",
        "None",
        "Cluster",
    )
    assert spec["ports"] == [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]


def test_discovery_names_what_is_served(raw: Raw) -> None:
    assert raw("GET", "/version").json()["gitVersion"] == "v1.36.0"
    assert raw("GET", "/api").json()["versions"] == ["v1"]
    assert [g["name"] for g in raw("GET", "/apis").json()["groups"]] == ["apps"]
    apps = raw("GET", "/apis/apps/v1").json()
    assert {r["name"] for r in apps["resources"]} == {"deployments", "deployments/status", "deployments/scale"}
    core = raw("GET", "/api/v1").json()
    assert "svc" in next(r for r in core["resources"] if r["name"] == "services")["shortNames"]


def test_field_and_label_selectors_pick_the_named_objects(raw: Raw) -> None:
    for name in ("web", "web-v2", "api"):
        assert raw("POST", DEPLOYMENTS, _deployment(name, "v1", tier="front" if name != "api" else "back")).ok
    by_name = raw("GET", DEPLOYMENTS, params={"fieldSelector": "metadata.name=web-v2"}).json()
    assert [d["metadata"]["name"] for d in by_name["items"]] == ["web-v2"]
    not_named = raw(
        "GET", DEPLOYMENTS, params={"fieldSelector": f"metadata.name!={APP},metadata.namespace={NAMESPACE}"}
    )
    assert [d["metadata"]["name"] for d in not_named.json()["items"]] == ["api", "web", "web-v2"]
    in_set = raw("GET", DEPLOYMENTS, params={"labelSelector": "app in (web, api),tier!=back"}).json()
    assert [d["metadata"]["name"] for d in in_set["items"]] == ["web"]
    refused = raw("GET", DEPLOYMENTS, params={"fieldSelector": "spec.replicas=1"})
    assert refused.status_code == 400 and "field label not supported: spec.replicas" in refused.json()["message"]


def test_limit_and_continue_page_through_one_snapshot(raw: Raw) -> None:
    for name in ("a1", "a2", "a3"):
        assert raw("POST", DEPLOYMENTS, _deployment(name, "v1")).ok
    first = raw("GET", DEPLOYMENTS, params={"limit": "2"}).json()
    assert [d["metadata"]["name"] for d in first["items"]] == ["a1", "a2"]
    assert first["metadata"]["remainingItemCount"] == 2 and first["metadata"]["continue"]
    assert raw("DELETE", f"{DEPLOYMENTS}/{APP}").ok  # a write between pages does not change the snapshot
    second = raw("GET", DEPLOYMENTS, params={"limit": "2", "continue": first["metadata"]["continue"]}).json()
    assert [d["metadata"]["name"] for d in second["items"]] == ["a3", APP]
    assert "continue" not in second["metadata"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


def test_resource_versions_are_honoured(raw: Raw) -> None:
    before = raw("GET", DEPLOYMENTS).json()["metadata"]["resourceVersion"]
    assert raw("POST", DEPLOYMENTS, _deployment("later", "v1")).ok
    exact = raw("GET", DEPLOYMENTS, params={"resourceVersion": before, "resourceVersionMatch": "Exact"}).json()
    assert [d["metadata"]["name"] for d in exact["items"]] == [APP]
    latest = raw("GET", DEPLOYMENTS, params={"resourceVersion": before}).json()
    assert [d["metadata"]["name"] for d in latest["items"]] == ["later", APP]
    future = raw("GET", DEPLOYMENTS, params={"resourceVersion": str(int(before) + 10**6)})
    assert future.status_code == 504 and "Too large resource version" in future.json()["message"]


def test_delete_answers_as_the_api_does(raw: Raw, emu: K8sEmulator) -> None:
    service = raw("DELETE", f"{SERVICES}/{APP}")
    assert service.status_code == 200 and service.json()["kind"] == "Service"
    assert service.json()["spec"]["clusterIP"]
    background = raw("DELETE", f"{DEPLOYMENTS}/{APP}", params={"propagationPolicy": "Background"})
    assert background.status_code == 200
    assert background.json()["status"] == "Success" and background.json()["details"]["group"] == "apps"
    assert raw("POST", DEPLOYMENTS, _deployment("fg", "v1")).ok
    foreground = raw("DELETE", f"{DEPLOYMENTS}/fg", params={"propagationPolicy": "Foreground"})
    assert foreground.status_code == 202
    assert foreground.json()["metadata"]["deletionTimestamp"]
    assert foreground.json()["metadata"]["finalizers"] == ["foregroundDeletion"]
    watch = raw(
        "GET",
        DEPLOYMENTS,
        params={
            "watch": "true",
            "resourceVersion": foreground.json()["metadata"]["resourceVersion"],
            "timeoutSeconds": "5",
        },
        stream=True,
    )
    events = [json.loads(line) for line in watch.iter_lines() if line]
    assert events[-1]["type"] == "DELETED" and events[-1]["object"]["metadata"]["name"] == "fg"
    assert emu.get("deployments", NAMESPACE, "fg") is None


def test_a_watch_from_a_resource_version_streams_what_changed(raw: Raw, emu: K8sEmulator) -> None:
    start = raw("GET", DEPLOYMENTS).json()["metadata"]["resourceVersion"]
    emu.annotate("deployments", NAMESPACE, APP, "team", "payments")
    params = {"watch": "true", "resourceVersion": start, "fieldSelector": f"metadata.name={APP}", "timeoutSeconds": "1"}
    lines = raw("GET", DEPLOYMENTS, params=params, stream=True).iter_lines()
    events = [json.loads(line) for line in lines if line]
    assert [e["type"] for e in events] == ["MODIFIED"]
    assert events[0]["object"]["metadata"]["annotations"]["team"] == "payments"


def test_kubectl_get_gets_a_table(raw: Raw) -> None:
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    doc = raw("GET", DEPLOYMENTS, headers={"Accept": accept}).json()
    assert doc["kind"] == "Table"
    assert [c["name"] for c in doc["columnDefinitions"]][:4] == ["Name", "Ready", "Up-to-date", "Available"]
    assert doc["rows"][0]["cells"][:4] == [APP, "4/4", 4, 4]


def test_bad_requests_are_refused_with_the_servers_reasons(raw: Raw) -> None:
    no_containers = _deployment("bad", "v1")
    no_containers["spec"]["template"]["spec"]["containers"] = []
    invalid = raw("POST", DEPLOYMENTS, no_containers)
    assert invalid.status_code == 422 and invalid.json()["reason"] == "Invalid"
    assert invalid.json()["details"]["causes"][0]["field"] == "spec.template.spec.containers"
    taken = raw("POST", DEPLOYMENTS, _deployment(APP, "v1") | {"metadata": {"name": APP}})
    assert taken.status_code == 409 and taken.json()["reason"] == "AlreadyExists"
    patch = raw("PATCH", f"{DEPLOYMENTS}/{APP}", {"spec": {"replicas": 3}}, headers={"Content-Type": "text/plain"})
    assert patch.status_code == 415


def test_the_contract_check_rejects_what_the_api_never_says() -> None:
    path = f"{DEPLOYMENTS}/shop"
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop"}, "spec": {"replicas": "2"}}
    problems = k8s_contract.check("GET", path, {}, b"", 200, json.dumps(bad).encode())
    assert any("spec.replicas" in p and "not of type 'integer'" in p for p in problems)
    invented = {"kind": "Service", "apiVersion": "v1", "metadata": {"name": "x", "colour": "red"}}
    problems = k8s_contract.check("GET", f"{SERVICES}/x", {}, b"", 200, json.dumps(invented).encode())
    assert any("'colour' was unexpected" in p for p in problems)
    wrong_delete = {"kind": "Status", "apiVersion": "v1", "status": "Success"}
    assert k8s_contract.check("DELETE", f"{SERVICES}/x", {}, b"", 200, json.dumps(wrong_delete).encode())
    assert k8s_contract.check("GET", path, {"limt": "5"}, b"", 200, b"{}") == [
        f"request GET {path}: query parameter 'limt' is not declared"
    ]
    assert k8s_contract.check("GET", "/apis/apps/v1/namespaces/x/gadgets", {}, b"", 200, b"{}")


def test_json_patches_apply_and_a_failed_test_is_refused(raw: Raw) -> None:
    json_patch = {"Content-Type": "application/json-patch+json"}
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 4},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/metadata/labels/tier", "value": "front"},
    ]
    patched = raw("PATCH", f"{DEPLOYMENTS}/{APP}", ops, headers=json_patch)
    assert patched.status_code == 200
    assert patched.json()["spec"]["replicas"] == 3 and patched.json()["metadata"]["labels"]["tier"] == "front"
    stale = raw(
        "PATCH", f"{DEPLOYMENTS}/{APP}", [{"op": "test", "path": "/spec/replicas", "value": 4}], headers=json_patch
    )
    assert stale.status_code == 422 and "testing value /spec/replicas failed" in stale.json()["message"]


def test_creating_in_a_namespace_that_does_not_exist_is_not_found(raw: Raw) -> None:
    missing = raw("POST", "/apis/apps/v1/namespaces/staging/deployments", _deployment("web", "v1"))
    assert missing.status_code == 404 and missing.json()["message"] == 'namespaces "staging" not found'
    assert raw("GET", "/apis/apps/v1/namespaces/staging/deployments").json()["items"] == []


def test_unknown_fields_are_dropped_with_a_warning_or_refused_when_strict(raw: Raw, emu: K8sEmulator) -> None:
    sloppy = _deployment("web", "v1")
    sloppy["spec"]["replica"] = 3  # a typo
    warned = raw("POST", DEPLOYMENTS, sloppy)
    assert warned.status_code == 201 and "replica" not in warned.json()["spec"]
    assert warned.headers["Warning"] == '299 - "unknown field \\"spec.replica\\""'
    strict = raw(
        "POST", DEPLOYMENTS, _deployment("api", "v1") | {"colour": "red"}, params={"fieldValidation": "Strict"}
    )
    assert strict.status_code == 400 and 'strict decoding error: unknown field "colour"' in strict.json()["message"]
    assert emu.get("deployments", NAMESPACE, "api") is None
    assert emu.violations  # both requests broke the description; this test sent them on purpose
    emu.violations.clear()


def test_names_and_labels_are_validated_as_the_server_does(raw: Raw) -> None:
    bad_label = _deployment("web", "v1-")  # a label value must end alphanumeric
    refused = raw("POST", DEPLOYMENTS, bad_label)
    assert refused.status_code == 422
    assert 'Invalid value: "v1-"' in refused.json()["message"]
    too_long = _deployment("web", "v" + "1" * 63)
    assert raw("POST", DEPLOYMENTS, too_long).status_code == 422
    service = {"metadata": {"name": "9lives"}, "spec": {"ports": [{"port": 80}]}}
    assert raw("POST", SERVICES, service).status_code == 422  # a Service name is a DNS-1035 label
    big = _deployment("web", "v1")
    big["metadata"]["annotations"] = {"note": "x" * (256 * 1024)}
    assert "Too long: must have at most 262144 bytes" in raw("POST", DEPLOYMENTS, big).json()["message"]
