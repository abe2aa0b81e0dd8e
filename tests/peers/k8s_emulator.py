"""A stateful Kubernetes API server on 127.0.0.1, over TLS with a test CA, for real clients.

No API server binary can run here, so this speaks the real API for the official `kubernetes`
client and for `kubectl`, unchanged, pointed at it by a kubeconfig (`emu.kubeconfig()`). The parts:
- `k8s_api`: the REST surface (Deployments, Services, discovery, Tables; see there), over
- `k8s_store`: one resourceVersion, a history of every write, selectors, pages and watches, with
- `k8s_objects`: the defaults, validation, managed fields and `Status` answers of a real server, and
- `k8s_controller`: the Deployment controller and the garbage collector, a thread here.
- the service proxy, `/api/v1/namespaces/{ns}/services/{name}:{port}/proxy/{path}`: forwarded to
  the pods the Service selects *now*. Pods are real HTTP servers (`orchestrator.demo.app`, one per
  version, in threads) answering `/health` 200 or 503 (`set_health`) and `/version`; requests are
  spread over the selected Deployments in proportion to their available replicas (round robin),
  so a canary's replica ratio is observable through the API server, as on a real cluster.

Every exchange is checked against the Kubernetes OpenAPI description (`k8s_contract`), both ways:
problems go to `violations`, which the fixtures require to be empty. Faults (`add_fault`): any
status (429 with Retry-After, 5xx) or a dropped connection for requests matching a method and path,
a number of times. `after_request` runs a callback once after a matching request was answered from
the state (a concurrent writer, to provoke a real 409). Every request is recorded in `calls` as
(method, path, status).
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

import trustme
import yaml

from orchestrator.demo.app import make_server
from tests.peers import k8s_contract
from tests.peers.k8s_api import Api
from tests.peers.k8s_controller import VERSION_LABEL, Controller
from tests.peers.k8s_http import handler
from tests.peers.k8s_objects import status_doc
from tests.peers.k8s_selectors import labels_match
from tests.peers.k8s_store import Store

__all__ = ["VERSION_LABEL", "Fault", "K8sEmulator"]


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
class Hook:
    method: str
    path: str
    action: Callable[[], None]
    skip: int = 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class K8sEmulator:
    def __init__(
        self, *, token: str = "emulator-token-0123456789", rollout_delay: float = 0.05, validate: bool = True
    ) -> None:
        self.token = token
        self.never_ready: set[str] = set()
        """Versions whose pods never become available (a crash-looping release)."""
        self.calls: list[tuple[str, str, int]] = []
        self.requests: list[tuple[str, str]] = []
        """(method, path with query) of every request."""
        self.writes: list[tuple[str, str, Any]] = []
        """(method, path, JSON body) of every POST, PUT and PATCH, as the client sent it."""
        self.faults: list[Fault] = []
        self.hooks: list[Hook] = []
        self.validate = validate and k8s_contract.is_available()
        self.violations: list[str] = []
        self.lock = threading.RLock()
        self.store = Store(self.lock)
        self.controller = Controller(self.store, self.never_ready)
        self.controller.rollout_delay = rollout_delay
        self.api = Api(self.store, self.controller)
        self._pods: dict[str, Any] = {}
        self._health: dict[str, bool] = {}
        self._round_robin: dict[tuple[str, str], int] = {}
        self.stopping = threading.Event()
        ca = trustme.CA()
        self.ca_pem = ca.cert_pem.bytes()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._server = _Server(("127.0.0.1", 0), handler(self))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        self._controller = threading.Thread(target=self._control_loop, daemon=True)
        self._controller.start()

    @property
    def rollout_delay(self) -> float:
        return self.controller.rollout_delay

    @rollout_delay.setter
    def rollout_delay(self, seconds: float) -> None:
        self.controller.rollout_delay = seconds

    # --- test controls --------------------------------------------------------------------------

    def kubeconfig(self, token: str | None = None, namespace: str | None = None) -> str:
        """Kubeconfig YAML naming this server, its CA and a bearer token (ours unless given)."""
        context: dict[str, str] = {"cluster": "emulator", "user": "deployer"}
        if namespace:
            context["namespace"] = namespace
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
            "contexts": [{"name": "emulator", "context": context}],
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
        """The Deployment `name` running `version` (fully rolled out) and the Service `name` selecting it,
        created as `kubectl create` would send them (the API server fills in the rest)."""
        labels = {"app.kubernetes.io/name": name, VERSION_LABEL: version}
        container = {"name": "web", "image": f"registry.example/{name}:{version}", "ports": [{"containerPort": port}]}
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
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
        with self.lock:
            self.api.namespaces.add(namespace)
            self.api.create("deployments", namespace, deployment, "kubectl-create")
            self.api.create("services", namespace, service, "kubectl-create")
            self.controller.complete(("deployments", namespace, name), labels)

    def add_namespace(self, namespace: str) -> None:
        with self.lock:
            self.api.namespaces.add(namespace)

    def create(self, kind: str, namespace: str, body: dict[str, Any]) -> None:
        """Another writer creates an object (raises if it exists)."""
        with self.lock:
            self.api.create(kind, namespace, body, "kubectl-create")

    def delete(self, kind: str, namespace: str, name: str) -> None:
        """Another writer deletes an object at once."""
        with self.lock:
            self.store.remove((kind, namespace, name))
            self.controller.forget((kind, namespace, name))

    def add_fault(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def after_request(self, method: str, path: str, action: Callable[[], None], *, skip: int = 0) -> None:
        """Run `action` once, right after the next request (after `skip` others) matching `method` and
        `path` (regex) was answered from the state and before the client has the answer. It runs under
        the emulator's lock: change state directly, never through the API."""
        with self.lock:
            self.hooks.append(Hook(method, path, action, skip))

    def set_health(self, version: str, healthy: bool) -> None:
        with self.lock:
            self._health[version] = healthy
            if version in self._pods:
                self._pods[version].healthy = healthy

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.store.objects.get((kind, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def names(self, kind: str, namespace: str) -> list[str]:
        with self.lock:
            return sorted(n for k, ns, n in self.store.objects if k == kind and ns == namespace)

    def annotate(self, kind: str, namespace: str, name: str, key: str, value: str) -> None:
        """A concurrent writer: change the object behind the client's back (new resourceVersion)."""
        with self.lock:
            obj = copy.deepcopy(self.store.objects[(kind, namespace, name)])
            obj["metadata"].setdefault("annotations", {})[key] = value
            self.store.write((kind, namespace, name), obj)

    def set_selector(self, namespace: str, service: str, selector: dict[str, str]) -> None:
        """Another writer (kubectl, a GitOps sync) replaces a Service's selector (new resourceVersion)."""
        with self.lock:
            obj = copy.deepcopy(self.store.objects[("services", namespace, service)])
            obj["spec"]["selector"] = dict(selector)
            self.store.write(("services", namespace, service), obj)

    def endpoints(self, namespace: str, service: str) -> dict[str, int]:
        """Version -> number of ready pods the Service selects now."""
        with self.lock:
            return {version: count for version, count, _labels in self._endpoints(namespace, service)}

    def count(self, method: str | None = None, pattern: str = ".*") -> int:
        with self.lock:
            return sum(
                1 for m, p, _s in self.calls if (method is None or m == method) and re.fullmatch(pattern, p) is not None
            )

    def record_violations(self, problems: list[str]) -> None:
        if problems:
            with self.lock:
                self.violations.extend(problems)

    def close(self) -> None:
        self.stopping.set()
        with self.lock:
            self.store.changed.notify_all()
        self._server.shutdown()
        self._server.server_close()
        for server in self._pods.values():
            server.shutdown()
            server.server_close()

    # --- the controller -------------------------------------------------------------------------

    def _control_loop(self) -> None:
        while not self.stopping.wait(0.01):
            with self.lock:
                self.controller.step()

    # --- the service proxy ----------------------------------------------------------------------

    def _endpoints(self, namespace: str, service: str) -> list[tuple[str, int, dict[str, str]]]:
        svc = self.store.objects.get(("services", namespace, service))
        if svc is None:
            return []
        selector = svc["spec"].get("selector") or {}
        found = []
        for (kind, ns, name), obj in sorted(self.store.objects.items()):
            if kind != "deployments" or ns != namespace:
                continue
            rollout = self.controller.rollouts.get((ns, name))
            serving = rollout.serving if rollout else None
            count = int((obj.get("status") or {}).get("availableReplicas") or 0)
            if selector and serving and count > 0 and labels_match(selector, serving):
                found.append((serving.get(VERSION_LABEL, ""), count, serving))
        return found

    def _pod_port(self, version: str) -> int:
        with self.lock:
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
        with self.lock:
            svc = self.store.objects.get(("services", namespace, name))
            if svc is None:
                doc = status_doc(404, "NotFound", f'services "{name}" not found', name, "services")
                return 404, {"Content-Type": "application/json"}, json.dumps(doc).encode()
            pods = [(version, count) for version, count, _labels in self._endpoints(namespace, name)]
            if not pods:
                message = f'no endpoints available for service "{name}"'
                doc = status_doc(503, "ServiceUnavailable", message, name, "services")
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
