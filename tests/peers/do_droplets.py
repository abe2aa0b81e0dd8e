"""The Droplets side of the DigitalOcean simulator: droplets and their tags, load balancers, reserved IPs.

`DoSimulator` hands it every `/v2/droplets`, `/v2/load_balancers`, `/v2/reserved_ips` and
`/v2/tags` request (auth, faults, recording and the OpenAPI check stay in the simulator's HTTP
layer), under the simulator's lock. State is kept as DigitalOcean keeps it:

- droplets with tags and IPv4 networks (public and private); `GET /v2/droplets?tag_name=` pages;
  tags are assigned and unassigned through `/v2/tags/{tag}/resources`;
- load balancers whose `droplet_ids` change by `POST`/`DELETE /v2/load_balancers/{id}/droplets`
  (unknown droplets are a 422, as DigitalOcean answers); a Droplet added gets traffic only once its
  health check has passed (`check_interval_seconds` x `healthy_threshold` after it was added);
- reserved IPs moved by `POST /v2/reserved_ips/{ip}/actions` (assign / unassign): the action is
  `in-progress` for `action_seconds`, then `completed`, and only then does the IP point at the new
  droplet.

A load balancer and a reserved IP are also real: each is an HTTP forwarder on a loopback port
(`entry_url`) that passes GET requests to its droplets' private address (round-robin) or the
assigned droplet's public address, on `target_port`. So a test sees what users would get through
them; with no droplet behind them they answer 503.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["DropletsState"]

_REGION = {
    "name": "Amsterdam 3",
    "slug": "ams3",
    "features": ["private_networking", "backups", "ipv6", "metadata"],
    "available": True,
    "sizes": ["s-1vcpu-1gb"],
}
_SIZE = {
    "slug": "s-1vcpu-1gb",
    "memory": 1024,
    "vcpus": 1,
    "disk": 25,
    "transfer": 1.0,
    "price_monthly": 6.0,
    "price_hourly": 0.00893,
    "regions": ["ams3"],
    "available": True,
    "description": "Basic",
}
_IMAGE = {
    "id": 63663980,
    "name": "12 x64",
    "distribution": "Debian",
    "slug": "debian-12-x64",
    "public": True,
    "regions": ["ams3"],
    "created_at": "2024-01-01T00:00:00Z",
    "type": "base",
    "min_disk_size": 15,
    "size_gigabytes": 2.36,
    "description": "",
    "tags": [],
    "status": "available",
    "error_message": "",
}
ACTION_SECONDS = 0.05
_KINDS = ("droplets", "load_balancers", "reserved_ips", "tags")


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, code: str, message: str) -> tuple[int, Any]:
    return status, {"id": code, "message": message, "request_id": str(uuid.uuid4())}


@dataclass
class Droplet:
    id: int
    name: str
    public_ip: str
    private_ip: str
    tags: list[str]
    created: float = field(default_factory=time.time)


@dataclass
class Action:
    id: int
    type: str
    started: float
    droplet_id: int | None
    resource_id: int
    applied: bool = False

    def done(self, now: float, seconds: float) -> bool:
        return now >= self.started + seconds


@dataclass
class LoadBalancer:
    id: str
    name: str
    target_port: int
    droplet_ids: list[int]
    created: float
    forwarder: Forwarder
    check_interval_seconds: int = 10
    healthy_threshold: int = 3
    added: dict[int, float] = field(default_factory=dict)
    """When each Droplet was added: it gets traffic once its health check passed healthy_threshold times."""

    def healthy(self, droplet_id: int, now: float) -> bool:
        return now - self.added.get(droplet_id, 0.0) >= self.check_interval_seconds * self.healthy_threshold


@dataclass
class ReservedIp:
    ip: str
    droplet_id: int | None
    forwarder: Forwarder
    actions: list[Action] = field(default_factory=list)


class Forwarder:
    """An HTTP front on 127.0.0.1 passing GETs to whatever `targets()` names at the moment."""

    def __init__(self, targets: Callable[[], list[tuple[str, int]]]) -> None:
        self._targets = targets
        self._turn = itertools.count()
        forwarder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, body, kind = forwarder._forward(self.path)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def _forward(self, path: str) -> tuple[int, bytes, str]:
        targets = self._targets()
        if not targets:
            return 503, b"no droplet behind this address\n", "text/plain"
        host, port = targets[next(self._turn) % len(targets)]
        connection = http.client.HTTPConnection(host, port, timeout=10)
        try:
            connection.request("GET", path)
            answer = connection.getresponse()
            return answer.status, answer.read(), answer.getheader("Content-Type") or "text/plain"
        except OSError as exc:
            return 502, f"droplet {host}:{port} did not answer: {exc}\n".encode(), "text/plain"
        finally:
            connection.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class DropletsState:
    """Droplets, load balancers and reserved IPs; `handle` answers one API call (the caller holds the lock)."""

    def __init__(self, lock: threading.RLock, action_seconds: float = ACTION_SECONDS) -> None:
        self._lock = lock
        self.action_seconds = action_seconds
        self.droplets: dict[int, Droplet] = {}
        self.load_balancers: dict[str, LoadBalancer] = {}
        self.reserved_ips: dict[str, ReservedIp] = {}
        self._ids = itertools.count(3164444)
        self._action_ids = itertools.count(72531856)

    # --- test controls ----------------------------------------------------------------------------

    def seed_droplet(self, name: str, *, tags: tuple[str, ...], public_ip: str, private_ip: str | None = None) -> int:
        with self._lock:
            droplet = Droplet(next(self._ids), name, public_ip, private_ip or public_ip, list(tags))
            self.droplets[droplet.id] = droplet
            return droplet.id

    def seed_load_balancer(
        self,
        name: str,
        *,
        target_port: int,
        droplet_ids: tuple[int, ...] = (),
        check_interval_seconds: int = 10,
        healthy_threshold: int = 3,
    ) -> str:
        """A load balancer forwarding its entry URL to its droplets' private address on `target_port`; a
        Droplet added later gets traffic once its health check has run `healthy_threshold` times
        (seeded members are healthy from the start)."""
        lb_id = str(uuid.uuid4())

        def targets() -> list[tuple[str, int]]:
            with self._lock:
                lb, now = self.load_balancers[lb_id], time.time()
                return [
                    (self.droplets[i].private_ip, lb.target_port)
                    for i in lb.droplet_ids
                    if i in self.droplets and lb.healthy(i, now)
                ]

        with self._lock:
            self.load_balancers[lb_id] = LoadBalancer(
                lb_id,
                name,
                target_port,
                list(droplet_ids),
                time.time(),
                Forwarder(targets),
                check_interval_seconds,
                healthy_threshold,
            )
        return lb_id

    def seed_reserved_ip(self, ip: str, *, target_port: int, droplet_id: int | None = None) -> str:
        """A reserved IP forwarding its entry URL to the assigned droplet's public address on `target_port`."""

        def targets() -> list[tuple[str, int]]:
            with self._lock:
                self._settle(self.reserved_ips[ip])
                assigned = self.reserved_ips[ip].droplet_id
                return [(self.droplets[assigned].public_ip, target_port)] if assigned in self.droplets else []

        with self._lock:
            self.reserved_ips[ip] = ReservedIp(ip, droplet_id, Forwarder(targets))
        return ip

    def members(self, lb_id: str) -> list[int]:
        with self._lock:
            return sorted(self.load_balancers[lb_id].droplet_ids)

    def assigned(self, ip: str) -> int | None:
        with self._lock:
            self._settle(self.reserved_ips[ip])
            return self.reserved_ips[ip].droplet_id

    def entry_url(self, name: str) -> str:
        """The URL users reach through a load balancer (by id) or a reserved IP."""
        with self._lock:
            held = self.load_balancers.get(name) or self.reserved_ips[name]
            return held.forwarder.url

    def close(self) -> None:
        for held in [*self.load_balancers.values(), *self.reserved_ips.values()]:
            held.forwarder.close()

    # --- the API ----------------------------------------------------------------------------------

    @staticmethod
    def serves(parts: list[str]) -> bool:
        return len(parts) >= 2 and parts[0] == "v2" and parts[1] in _KINDS

    def handle(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        kind, rest = parts[1], parts[2:]
        if kind == "droplets":
            return self._droplets(method, rest, query)
        if kind == "load_balancers" and rest:
            return self._load_balancer(method, rest, body)
        if kind == "reserved_ips" and rest:
            return self._reserved_ip(method, rest, body)
        if kind == "tags" and len(rest) == 2 and rest[1] == "resources" and method in ("POST", "DELETE"):
            return self._tag_resources(method, rest[0], body)
        return _error(404, "not_found", "The resource you were accessing could not be found.")

    def _droplets(self, method: str, rest: list[str], query: dict[str, str]) -> tuple[int, Any]:
        if method != "GET":
            return _error(405, "method_not_allowed", method)
        if rest:
            droplet = self.droplets.get(int(rest[0])) if rest[0].isdigit() else None
            if droplet is None or len(rest) > 1:
                return _error(404, "not_found", "The resource you were accessing could not be found.")
            return 200, {"droplet": self._droplet_json(droplet)}
        tag = query.get("tag_name")
        chosen = sorted((d for d in self.droplets.values() if tag is None or tag in d.tags), key=lambda d: d.id)
        page, per_page = int(query.get("page", 1)), int(query.get("per_page", 20))
        links: dict[str, Any] = {}
        if page * per_page < len(chosen):
            after = f"page={page + 1}&per_page={per_page}" + (f"&tag_name={tag}" if tag else "")
            links = {"pages": {"next": f"https://api.digitalocean.com/v2/droplets?{after}"}}
        return 200, {
            "droplets": [self._droplet_json(d) for d in chosen[(page - 1) * per_page : page * per_page]],
            "links": links,
            "meta": {"total": len(chosen)},
        }

    def _load_balancer(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        lb = self.load_balancers.get(rest[0])
        if lb is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        if rest[1:] == [] and method == "GET":
            return 200, {"load_balancer": self._lb_json(lb)}
        if rest[1:] == ["droplets"] and method in ("POST", "DELETE"):
            ids = (body or {}).get("droplet_ids") or []
            unknown = [i for i in ids if i not in self.droplets]
            if unknown:
                return _error(422, "unprocessable_entity", f"droplets not found: {unknown}")
            if method == "POST":
                for i in ids:
                    if i not in lb.droplet_ids:
                        lb.droplet_ids.append(i)
                        lb.added[i] = time.time()
            else:
                lb.droplet_ids = [i for i in lb.droplet_ids if i not in ids]
            return 204, None
        return _error(404, "not_found", "no such route")

    def _reserved_ip(self, method: str, rest: list[str], body: Any) -> tuple[int, Any]:
        reserved = self.reserved_ips.get(rest[0])
        if reserved is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        self._settle(reserved)
        if rest[1:] == [] and method == "GET":
            return 200, {"reserved_ip": self._reserved_json(reserved)}
        if rest[1:] == ["actions"] and method == "POST":
            return self._reserved_action(reserved, body or {})
        if len(rest) == 3 and rest[1] == "actions" and method == "GET":
            action = next((a for a in reserved.actions if str(a.id) == rest[2]), None)
            if action is None:
                return _error(404, "not_found", "The resource you were accessing could not be found.")
            return 200, {"action": self._action_json(action)}
        return _error(404, "not_found", "no such route")

    def _reserved_action(self, reserved: ReservedIp, body: dict[str, Any]) -> tuple[int, Any]:
        if any(not a.done(time.time(), self.action_seconds) for a in reserved.actions):
            return _error(422, "unprocessable_entity", "The reserved IP has a pending event; try again later.")
        kind = body.get("type")
        droplet_id = body.get("droplet_id") if kind == "assign" else None
        if kind == "assign" and droplet_id not in self.droplets:
            return _error(422, "unprocessable_entity", f"droplet {droplet_id} not found")
        resource = int.from_bytes(bytes(int(octet) for octet in reserved.ip.split(".")), "big")
        action = Action(next(self._action_ids), f"{kind}_ip", time.time(), droplet_id, resource)
        reserved.actions.append(action)
        return 201, {"action": self._action_json(action)}

    def _tag_resources(self, method: str, tag: str, body: Any) -> tuple[int, Any]:
        for resource in (body or {}).get("resources") or []:
            droplet = self.droplets.get(int(resource.get("resource_id", 0)))
            if droplet is None:
                return _error(422, "unprocessable_entity", f"droplet {resource.get('resource_id')} not found")
            if method == "POST" and tag not in droplet.tags:
                droplet.tags.append(tag)
            if method == "DELETE" and tag in droplet.tags:
                droplet.tags.remove(tag)
        return 204, None

    def _settle(self, reserved: ReservedIp) -> None:
        """An action takes effect when it completes."""
        now = time.time()
        for action in reserved.actions:
            if action.done(now, self.action_seconds) and not action.applied:
                reserved.droplet_id, action.applied = action.droplet_id, True

    # --- JSON views -------------------------------------------------------------------------------

    def _droplet_json(self, droplet: Droplet) -> dict[str, Any]:
        return {
            "id": droplet.id,
            "name": droplet.name,
            "memory": 1024,
            "vcpus": 1,
            "disk": 25,
            "locked": False,
            "status": "active",
            "kernel": None,
            "created_at": _iso(droplet.created),
            "features": ["private_networking"],
            "backup_ids": [],
            "next_backup_window": None,
            "snapshot_ids": [],
            "image": _IMAGE,
            "volume_ids": [],
            "size": _SIZE,
            "size_slug": "s-1vcpu-1gb",
            "networks": {
                "v4": [
                    {"ip_address": droplet.private_ip, "netmask": "255.255.0.0", "gateway": "", "type": "private"},
                    {"ip_address": droplet.public_ip, "netmask": "255.255.255.0", "gateway": "", "type": "public"},
                ],
                "v6": [],
            },
            "region": _REGION,
            "tags": list(droplet.tags),
            "vpc_uuid": "760e09ef-dc84-11e8-981e-3cfdfeaae000",
        }

    def _lb_json(self, lb: LoadBalancer) -> dict[str, Any]:
        return {
            "id": lb.id,
            "name": lb.name,
            "ip": "127.0.0.1",
            "size": "lb-small",
            "algorithm": "round_robin",
            "status": "active",
            "created_at": _iso(lb.created),
            "forwarding_rules": [
                {
                    "entry_protocol": "http",
                    "entry_port": 80,
                    "target_protocol": "http",
                    "target_port": lb.target_port,
                    "certificate_id": "",
                    "tls_passthrough": False,
                }
            ],
            "health_check": {
                "protocol": "http",
                "port": lb.target_port,
                "path": "/health",
                "check_interval_seconds": lb.check_interval_seconds,
                "response_timeout_seconds": 5,
                "healthy_threshold": lb.healthy_threshold,
                "unhealthy_threshold": 3,
            },
            "sticky_sessions": {"type": "none"},
            "region": _REGION,
            "tag": "",
            "droplet_ids": list(lb.droplet_ids),
            "redirect_http_to_https": False,
            "enable_proxy_protocol": False,
            "enable_backend_keepalive": False,
            "vpc_uuid": "760e09ef-dc84-11e8-981e-3cfdfeaae000",
        }

    def _reserved_json(self, reserved: ReservedIp) -> dict[str, Any]:
        droplet = self.droplets.get(reserved.droplet_id) if reserved.droplet_id is not None else None
        return {
            "ip": reserved.ip,
            "region": _REGION,
            "droplet": self._droplet_json(droplet) if droplet is not None else None,
            "locked": any(not a.done(time.time(), self.action_seconds) for a in reserved.actions),
        }

    def _action_json(self, action: Action) -> dict[str, Any]:
        done = action.done(time.time(), self.action_seconds)
        return {
            "id": action.id,
            "status": "completed" if done else "in-progress",
            "type": action.type,
            "started_at": _iso(action.started),
            "completed_at": _iso(action.started + self.action_seconds) if done else None,
            "resource_id": action.resource_id,
            "resource_type": "reserved_ip",
            "region": _REGION,
            "region_slug": "ams3",
        }
