"""A stateful Kubernetes API server on 127.0.0.1, over TLS with a test CA, for the real client.

No API server binary can run here, so this speaks enough of the real API for the official
`kubernetes` client, unchanged, pointed at it by a kubeconfig (`emu.kubeconfig()`):
- apps/v1 Deployments and v1 Services: get, list (labelSelector), create, replace, patch (strategic
  merge and JSON merge), delete, and the `status` subresource; `resourceVersion` on every write and
  optimistic concurrency on replace (409 Conflict), `generation` bumped on spec changes,
  409 AlreadyExists, 404 NotFound, 422 Invalid (selector not matching the template, selector
  changed) as `Status` objects of the real shape; bearer-token auth (401 otherwise).
- a test controller (a thread) that plays the Deployment controller: it observes each new
  generation, and `rollout_delay` seconds later reports the rollout complete (updated, ready and
  available replicas, conditions) and the new pods serving. A version in `never_ready` never
  becomes available: its old pods keep serving and after `progressDeadlineSeconds` the condition
  Progressing=False/ProgressDeadlineExceeded appears, as the real controller does.
- the service proxy, `/api/v1/namespaces/{ns}/services/{name}:{port}/proxy/{path}`: forwarded to
  the pods the Service selects *now*. Pods are real HTTP servers (`orchestrator.demo.app`, one per
  version, in threads) answering `/health` 200 or 503 (`set_health`) and `/version`; requests are
  spread over the selected Deployments in proportion to their available replicas (round robin),
  so a canary's replica ratio is observable through the API server, as on a real cluster.

Faults (`add_fault`): any status (429 with Retry-After, 5xx) or a dropped connection for requests
matching a method and path, a number of times. `after_request` runs a callback once after a
matching request was answered from the state (a concurrent writer, to provoke a real 409).
Every request is recorded in `calls` as (method, path, status).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import http.client
import json
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme
import yaml

from orchestrator.demo.app import make_server
from tests.peers.k8s_patch import merge_patch, strategic_merge_patch

__all__ = ["Fault", "K8sEmulator"]

VERSION_LABEL = "deploy-orchestrator/version"
_KINDS = {
    "deployments": ("apps/v1", "Deployment"),
    "services": ("v1", "Service"),
}
_COLLECTION = re.compile(r"^/(?:apis/apps/v1|api/v1)/namespaces/([^/]+)/(deployments|services)$")
_OBJECT = re.compile(r"^/(?:apis/apps/v1|api/v1)/namespaces/([^/]+)/(deployments|services)/([^/]+)(/status)?$")
_PROXY = re.compile(r"^/api/v1/namespaces/([^/]+)/services/([^/]+)/proxy(/.*)?$")


@dataclass
class Fault:
    """An injected failure for requests matching `method` and the `path` regex (full match)."""

    method: str
    path: str
    status: int = 500
    retry_after: float | None = None
    reset: bool = False
    """Close the connection without answering."""
    times: int | None = 1
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return method == self.method and re.fullmatch(self.path, path) is not None


@dataclass
class _Hook:
    method: str
    path: str
    action: Callable[[], None]
    skip: int = 0


@dataclass
class _Rollout:
    generation: int
    since: float
    serving: dict[str, str] | None
    """Labels of the pods that serve now (the last template that became available)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class K8sEmulator:
    def __init__(self, *, token: str = "emulator-token-0123456789", rollout_delay: float = 0.05) -> None:
        self.token = token
        self.rollout_delay = rollout_delay
        self.never_ready: set[str] = set()
        """Versions whose pods never become available (a crash-looping release)."""
        self.calls: list[tuple[str, str, int]] = []
        self.faults: list[Fault] = []
        self._hooks: list[_Hook] = []
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._rollouts: dict[tuple[str, str], _Rollout] = {}
        self._pods: dict[str, Any] = {}
        self._health: dict[str, bool] = {}
        self._round_robin: dict[tuple[str, str], int] = {}
        self._rv = 1000
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        ca = trustme.CA()
        self.ca_pem = ca.cert_pem.bytes()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        self._controller = threading.Thread(target=self._control_loop, daemon=True)
        self._controller.start()

    # --- test controls --------------------------------------------------------------------------

    def kubeconfig(self, token: str | None = None) -> str:
        """Kubeconfig YAML naming this server, its CA and a bearer token (ours unless given)."""
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "emulator",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(self.ca_pem).decode(),
                    },
                }
            ],
            "users": [{"name": "deployer", "user": {"token": token or self.token}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "deployer"}}],
            "current-context": "emulator",
        }
        return yaml.safe_dump(doc)

    def seed_app(
        self,
        name: str = "shop",
        *,
        namespace: str = "prod",
        version: str = "v1",
        replicas: int = 2,
        port: int = 8080,
    ) -> None:
        """The Deployment `name` running `version` (fully rolled out) and the Service `name` selecting it."""
        labels = {"app.kubernetes.io/name": name, VERSION_LABEL: version}
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": f"registry.example/{name}:{version}",
                                "ports": [{"containerPort": port}],
                            }
                        ]
                    },
                },
            },
        }
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "selector": {"app.kubernetes.io/name": name, VERSION_LABEL: version},
                "ports": [{"name": "http", "port": 80, "targetPort": port}],
            },
        }
        with self._lock:
            self._create("deployments", namespace, deployment)
            self._create("services", namespace, service)
            obj = self._objects[("deployments", namespace, name)]
            obj["status"] = _complete_status(obj)
            self._rollouts[(namespace, name)] = _Rollout(1, time.monotonic(), dict(labels))

    def create(self, kind: str, namespace: str, body: dict[str, Any]) -> None:
        """Another writer creates an object (raises if it exists)."""
        with self._lock:
            self._create(kind, namespace, body)

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def after_request(self, method: str, path: str, action: Callable[[], None], *, skip: int = 0) -> None:
        """Run `action` once, right after the next request (after `skip` others) matching `method` and
        `path` (regex) was answered from the state and before the client has the answer. It runs under
        the emulator's lock: change state directly, never through the API."""
        with self._lock:
            self._hooks.append(_Hook(method, path, action, skip))

    def set_health(self, version: str, healthy: bool) -> None:
        with self._lock:
            self._health[version] = healthy
            if version in self._pods:
                self._pods[version].healthy = healthy

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._objects.get((kind, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def names(self, kind: str, namespace: str) -> list[str]:
        with self._lock:
            return sorted(n for k, ns, n in self._objects if k == kind and ns == namespace)

    def annotate(self, kind: str, namespace: str, name: str, key: str, value: str) -> None:
        """A concurrent writer: change the object behind the client's back (new resourceVersion)."""
        with self._lock:
            obj = self._objects[(kind, namespace, name)]
            obj["metadata"].setdefault("annotations", {})[key] = value
            obj["metadata"]["resourceVersion"] = self._next_rv()

    def set_selector(self, namespace: str, service: str, selector: dict[str, str]) -> None:
        """Another writer (kubectl, a GitOps sync) replaces a Service's selector (new resourceVersion)."""
        with self._lock:
            obj = self._objects[("services", namespace, service)]
            obj["spec"]["selector"] = dict(selector)
            obj["metadata"]["resourceVersion"] = self._next_rv()

    def endpoints(self, namespace: str, service: str) -> dict[str, int]:
        """Version -> number of ready pods the Service selects now."""
        with self._lock:
            return {version: count for version, count, _labels in self._endpoints(namespace, service)}

    def count(self, method: str | None = None, pattern: str = ".*") -> int:
        with self._lock:
            return sum(
                1 for m, p, _s in self.calls if (method is None or m == method) and re.fullmatch(pattern, p) is not None
            )

    def close(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        for server in self._pods.values():
            server.shutdown()
            server.server_close()

    # --- the API --------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        path = urlsplit(raw_path).path
        query = {k: v[0] for k, v in parse_qs(urlsplit(raw_path).query).items()}
        if (m := _COLLECTION.match(path)) is not None:
            namespace, kind = m.groups()
            if method == "GET":
                return 200, self._list(kind, namespace, query.get("labelSelector", ""))
            if method == "POST":
                return self._guard(lambda: (201, self._create(kind, namespace, json.loads(body))))
        if (m := _OBJECT.match(path)) is not None:
            namespace, kind, name, sub = m.groups()
            key = (kind, namespace, name)
            if key not in self._objects:
                return 404, _status(404, "NotFound", f'{_resource(kind)} "{name}" not found', name, kind)
            if method == "GET":
                return 200, copy.deepcopy(self._objects[key])
            if method == "DELETE":
                del self._objects[key]
                self._rollouts.pop((namespace, name), None)
                return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}}
            if method in ("PUT", "PATCH"):
                if method == "PUT":
                    wanted = json.loads(body)
                else:
                    wanted = _patched(self._objects[key], json.loads(body), headers.get("content-type", ""))
                    if wanted is None:
                        return 415, _status(415, "UnsupportedMediaType", "unsupported patch type", name, kind)
                return self._guard(lambda: (200, self._update(key, wanted, status_only=bool(sub))))
        return 404, _status(404, "NotFound", "the server could not find the requested resource", "", "")

    def _guard(self, action: Callable[[], tuple[int, dict[str, Any]]]) -> tuple[int, dict[str, Any]]:
        try:
            return action()
        except _ApiError as exc:
            return exc.code, exc.status

    def _list(self, kind: str, namespace: str, selector: str) -> dict[str, Any]:
        api_version, kind_name = _KINDS[kind]
        wanted = _parse_selector(selector)
        items = []
        for (k, ns, _name), obj in sorted(self._objects.items()):
            if k == kind and ns == namespace and _matches(wanted, obj["metadata"].get("labels") or {}):
                item = copy.deepcopy(obj)
                item.pop("kind", None)
                item.pop("apiVersion", None)
                items.append(item)
        return {
            "kind": f"{kind_name}List",
            "apiVersion": api_version,
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    def _create(self, kind: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("metadata", {}).get("name")
        if (kind, namespace, name) in self._objects:
            raise _ApiError(
                409, _status(409, "AlreadyExists", f'{_resource(kind)} "{name}" already exists', name, kind)
            )
        obj = copy.deepcopy(body)
        api_version, kind_name = _KINDS[kind]
        obj["apiVersion"], obj["kind"] = api_version, kind_name
        metadata = obj["metadata"]
        metadata.update(
            namespace=namespace,
            uid=str(uuid.uuid4()),
            resourceVersion=self._next_rv(),
            creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        _default(kind, obj)
        _validate(kind, obj, None)
        if kind == "deployments":
            metadata["generation"] = 1
            obj["status"] = {}
        else:
            obj["status"] = {"loadBalancer": {}}
        self._objects[(kind, namespace, name)] = obj
        return copy.deepcopy(obj)

    def _update(self, key: tuple[str, str, str], wanted: dict[str, Any], *, status_only: bool) -> dict[str, Any]:
        kind, _namespace, name = key
        current = self._objects[key]
        sent_rv = (wanted.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            message = (
                f'Operation cannot be fulfilled on {_resource(kind)} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again"
            )
            raise _ApiError(409, _status(409, "Conflict", message, name, kind))
        obj = copy.deepcopy(current)
        if status_only:
            obj["status"] = copy.deepcopy(wanted.get("status") or {})
        else:
            obj["spec"] = copy.deepcopy(wanted.get("spec") or {})
            for field in ("labels", "annotations"):
                obj["metadata"][field] = copy.deepcopy((wanted.get("metadata") or {}).get(field) or {})
            if kind == "services":
                obj["spec"].setdefault("clusterIP", current["spec"].get("clusterIP"))
            _default(kind, obj)
            _validate(kind, obj, current)
            if kind == "deployments" and obj["spec"] != current["spec"]:
                obj["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._objects[key] = obj
        return copy.deepcopy(obj)

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    # --- the test controller --------------------------------------------------------------------

    def _control_loop(self) -> None:
        while not self._stopping.wait(0.01):
            with self._lock:
                for (kind, namespace, name), obj in list(self._objects.items()):
                    if kind == "deployments":
                        self._reconcile(namespace, name, obj)

    def _reconcile(self, namespace: str, name: str, obj: dict[str, Any]) -> None:
        now = time.monotonic()
        generation = int(obj["metadata"].get("generation", 1))
        rollout = self._rollouts.get((namespace, name))
        if rollout is None:
            rollout = self._rollouts[(namespace, name)] = _Rollout(generation, now, None)
        elif rollout.generation != generation:
            rollout.generation, rollout.since = generation, now
        spec = obj["spec"]
        labels = dict(spec["template"]["metadata"].get("labels") or {})
        wanted = int(spec.get("replicas", 1))
        version = labels.get(VERSION_LABEL, "")
        old = int((obj.get("status") or {}).get("availableReplicas") or 0) if rollout.serving != labels else 0
        if version in self.never_ready and wanted > 0:
            status: dict[str, Any] = {
                "observedGeneration": generation,
                "replicas": old + 1,
                "updatedReplicas": 1,
                "readyReplicas": old,
                "availableReplicas": old,
                "unavailableReplicas": 1,
            }
            deadline = float(spec.get("progressDeadlineSeconds", 600))
            progressing = {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}
            if now - rollout.since >= deadline:
                progressing = {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": f'ReplicaSet "{name}-{abs(hash(version)) % 10**10}" has timed out progressing.',
                }
            status["conditions"] = [
                {"type": "Available", "status": "True" if old else "False"},
                progressing,
            ]
        elif now - rollout.since >= self.rollout_delay:
            status = _complete_status(obj)
            rollout.serving = labels if wanted > 0 else rollout.serving
        else:
            status = dict(obj.get("status") or {})
            status["observedGeneration"] = generation
            if rollout.serving == labels:
                # Scaling down takes pods out of the endpoints at once (they are terminating).
                for key in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
                    status[key] = min(int(status.get(key) or 0), wanted)
            else:
                # A new template: its ReplicaSet has no pods yet; the old pods still serve.
                status["updatedReplicas"] = 0
            # A new generation restarts the progress clock, as the controller does: a deadline an
            # earlier template exceeded says nothing about this one.
            status["conditions"] = [
                c
                if c.get("type") != "Progressing"
                else {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}
                for c in status.get("conditions") or []
            ]
        if status != obj.get("status"):
            obj["status"] = status
            obj["metadata"]["resourceVersion"] = self._next_rv()

    # --- the service proxy ----------------------------------------------------------------------

    def _endpoints(self, namespace: str, service: str) -> list[tuple[str, int, dict[str, str]]]:
        svc = self._objects.get(("services", namespace, service))
        if svc is None:
            return []
        selector = svc["spec"].get("selector") or {}
        found = []
        for (kind, ns, name), obj in sorted(self._objects.items()):
            if kind != "deployments" or ns != namespace:
                continue
            rollout = self._rollouts.get((ns, name))
            serving = rollout.serving if rollout else None
            count = int((obj.get("status") or {}).get("availableReplicas") or 0)
            if selector and serving and count > 0 and _matches(selector, serving):
                found.append((serving.get(VERSION_LABEL, ""), count, serving))
        return found

    def _pod_port(self, version: str) -> int:
        with self._lock:
            server = self._pods.get(version)
            if server is None:
                server = make_server(0, version, healthy=self._health.get(version, True))
                server.daemon_threads = True
                threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
                self._pods[version] = server
            return int(server.server_address[1])

    def proxy(
        self, method: str, namespace: str, target: str, rest: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        name = target.split(":")[1] if target.count(":") == 2 else target.split(":")[0]
        with self._lock:
            svc = self._objects.get(("services", namespace, name))
            if svc is None:
                doc = _status(404, "NotFound", f'services "{name}" not found', name, "services")
                return 404, {"Content-Type": "application/json"}, json.dumps(doc).encode()
            pods = [(version, count) for version, count, _labels in self._endpoints(namespace, name)]
            if not pods:
                doc = _status(
                    503, "ServiceUnavailable", f'no endpoints available for service "{name}"', name, "services"
                )
                return 503, {"Content-Type": "application/json"}, json.dumps(doc).encode()
            ring = [version for version, count in pods for _ in range(count)]
            turn = self._round_robin.get((namespace, name), 0)
            self._round_robin[(namespace, name)] = turn + 1
            version = ring[turn % len(ring)]
        connection = http.client.HTTPConnection("127.0.0.1", self._pod_port(version), timeout=10)
        try:
            connection.request(method, rest or "/", body=body or None)
            response = connection.getresponse()
            data = response.read()
            headers = {k: v for k, v in response.getheaders() if k.lower() in ("content-type", "x-release-version")}
            return response.status, headers, data
        finally:
            connection.close()


class _ApiError(Exception):
    def __init__(self, code: int, status: dict[str, Any]) -> None:
        super().__init__(status.get("message"))
        self.code = code
        self.status = status


def _handler(emu: K8sEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self._serve()

        def do_PATCH(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            headers = {k.lower(): v for k, v in self.headers.items()}
            if headers.get("authorization") != f"Bearer {emu.token}":
                self._record(path, 401)
                self._json(401, _status(401, "Unauthorized", "Unauthorized", "", ""))
                return
            with emu._lock:
                fault = next((f for f in emu.faults if f.matches(self.command, path)), None)
                if fault is not None:
                    fault.hits += 1
            if fault is not None:
                self._record(path, 0 if fault.reset else fault.status)
                if fault.reset:
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                    return
                extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                reason = "TooManyRequests" if fault.status == 429 else "InternalError"
                self._json(fault.status, _status(fault.status, reason, "injected fault", "", ""), extra)
                return
            if (m := _PROXY.match(path)) is not None:
                namespace, target, rest = m.groups()
                query = urlsplit(self.path).query
                status, out_headers, data = emu.proxy(
                    self.command, namespace, target, (rest or "/") + (f"?{query}" if query else ""), body
                )
                self._record(path, status)
                self._send(status, data, out_headers)
                return
            with emu._lock:
                status, doc = emu.handle(self.command, self.path, headers, body)
                hook = next((h for h in emu._hooks if h.method == self.command and re.fullmatch(h.path, path)), None)
                if hook is not None and hook.skip > 0:
                    hook.skip -= 1
                elif hook is not None:
                    emu._hooks.remove(hook)
                    hook.action()
            self._record(path, status)
            self._json(status, doc)

        def _record(self, path: str, status: int) -> None:
            with emu._lock:
                emu.calls.append((self.command, path, status))

        def _json(self, status: int, doc: dict[str, Any], extra: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(doc).encode(), {"Content-Type": "application/json", **(extra or {})})

        def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _patched(current: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any] | None:
    kind = content_type.split(";")[0].strip()
    if kind == "application/merge-patch+json":
        return dict(merge_patch(current, patch))
    if kind == "application/strategic-merge-patch+json":
        return dict(strategic_merge_patch(current, patch))
    return None


def _default(kind: str, obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    if kind == "deployments":
        spec.setdefault("replicas", 1)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault(
            "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
        )
    else:
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("clusterIP", f"10.96.{len(spec.get('selector') or {})}.{uuid.uuid4().int % 250 + 1}")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))


def _validate(kind: str, obj: dict[str, Any], current: dict[str, Any] | None) -> None:
    if kind != "deployments":
        return
    name = obj["metadata"]["name"]
    spec = obj["spec"]
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    problems = []
    if not selector:
        problems.append("spec.selector: Required value")
    elif not _matches(selector, labels):
        problems.append("spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`")
    if not ((spec.get("template") or {}).get("spec") or {}).get("containers"):
        problems.append("spec.template.spec.containers: Required value")
    if current is not None and spec.get("selector") != current["spec"].get("selector"):
        problems.append("spec.selector: Invalid value: field is immutable")
    strategy = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    if strategy.get("maxUnavailable") in (0, "0", "0%") and strategy.get("maxSurge") in (0, "0", "0%"):
        problems.append("spec.strategy.rollingUpdate.maxUnavailable: may not be 0 when `maxSurge` is 0")
    if problems:
        message = f'Deployment.apps "{name}" is invalid: ' + "; ".join(problems)
        raise _ApiError(422, _status(422, "Invalid", message, name, kind))


def _complete_status(obj: dict[str, Any]) -> dict[str, Any]:
    replicas = int(obj["spec"].get("replicas", 1))
    return {
        "observedGeneration": int(obj["metadata"].get("generation", 1)),
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ],
    }


def _status(code: int, reason: str, message: str, name: str, kind: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": kind} if name else {}
    if kind == "deployments":
        details["group"] = "apps"
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    }


def _resource(kind: str) -> str:
    return "deployments.apps" if kind == "deployments" else kind


def _parse_selector(text: str) -> list[tuple[str, str, str | None]]:
    out: list[tuple[str, str, str | None]] = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            out.append(("!=", key, value))
        elif "=" in term:
            key, value = term.split("=", 1)
            out.append(("=", key.rstrip("="), value))
        else:
            out.append(("exists", term, None))
    return out


def _matches(selector: Any, labels: dict[str, str]) -> bool:
    terms = [("=", k, v) for k, v in selector.items()] if isinstance(selector, dict) else selector
    for op, key, value in terms:
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
        if op == "exists" and key not in labels:
            return False
    return True
