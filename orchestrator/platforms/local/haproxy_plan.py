"""What the haproxy data plane should look like, as data: its config file, its servers, and the
runtime-API commands that take a running haproxy from the servers it has to the servers wanted.

Every replica of every release is one server of the backend `releases`, named after its release and
index. A release's share of traffic is spread over its replicas' weights (haproxy weights are 0..256 per
server); a release with no traffic keeps its servers in `drain` (no new requests, those in flight
finish), ready to take traffic again at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.platforms.local.haproxy_cli import IDLE_SECONDS

__all__ = ["BACKEND", "Server", "commands", "config_text", "server_name", "version_of", "wanted_servers"]

BACKEND = "releases"
_MAX_WEIGHT = 256
_SAFE = str.maketrans({"+": "~"})
# A server added at run time takes no default-server settings, and its idle pool is off by default: each
# request would then open a connection of its own to the release (three times the CPU per request).
_SERVER_OPTIONS = "pool-max-conn -1 pool-purge-delay 10s check inter 1s rise 1 fall 1"


@dataclass(frozen=True, slots=True)
class Server:
    """One haproxy server: a replica's port and its weight (0: drain; -1: in maintenance)."""

    name: str
    port: int
    weight: int


def server_name(version: str, index: int) -> str:
    # Release labels may hold '+', which haproxy names may not; '~' cannot occur in a label.
    return f"{version.translate(_SAFE)}-r{index}"


def version_of(name: str) -> str:
    return name.rsplit("-r", 1)[0].replace("~", "+")


def wanted_servers(backends: Mapping[str, tuple[int, ...]], weights: Mapping[str, int]) -> dict[str, Server]:
    """The servers for `backends` (version -> replica ports) routed by `weights` (percent per version)."""
    servers = {}
    for version, ports in backends.items():
        share = weights.get(version, 0)
        # At least 1 for a release with traffic: its replicas must not all round down to none.
        weight = max(1, math.floor(share * _MAX_WEIGHT / 100 / len(ports))) if share > 0 else 0
        for index, port in enumerate(ports):
            name = server_name(version, index)
            servers[name] = Server(name, port, weight)
    return servers


def commands(current: Mapping[str, Server], wanted: Mapping[str, Server]) -> tuple[list[str], list[str]]:
    """Runtime-API commands: first those that open the way (new servers, weights, ready), then those
    that close it (drain, maintenance), so that traffic always has somewhere to go; and the servers to
    delete once they are idle."""
    opening: list[str] = []
    closing: list[str] = []
    for name, server in wanted.items():
        path = f"{BACKEND}/{name}"
        before = current.get(name)
        if before is None:
            opening.append(f"add server {path} 127.0.0.1:{server.port} weight {server.weight} {_SERVER_OPTIONS}")
            opening += [f"enable health {path}", f"enable server {path}"]
            if not server.weight:
                opening.append(f"set server {path} state drain")
            continue
        if before.port != server.port:
            opening.append(f"set server {path} addr 127.0.0.1 port {server.port}")
        if server.weight and before.weight != server.weight:
            opening += [f"set weight {path} {server.weight}", f"set server {path} state ready"]
        elif not server.weight and before.weight != 0:
            closing.append(f"set server {path} state drain")
    for name in current:
        if name not in wanted:
            closing.append(f"set server {BACKEND}/{name} state maint")
    gone = [name for name in current if name not in wanted]
    return opening + closing, gone


def config_text(
    listen: tuple[str, int],
    servers: Mapping[str, Server],
    *,
    max_connections: int,
    stop_seconds: float,
    traffic_threads: int,
) -> str:
    """The whole config: it always describes the servers as they are, so a reload changes nothing else.

    Traffic runs on `traffic_threads` threads (haproxy's default is one per CPU) and the runtime API on
    one more of its own. Under load the traffic threads are busy, and a command on their admin socket
    waited for one of them to be scheduled and to poll again. The admin thread sleeps in the kernel until a
    command comes, and is woken at once: with both configs under the same load side by side (100 and 70
    connections each, a busy 2-core machine), a switch's commands took 13.6-19.4 ms at the median on the
    traffic threads and 3.0-4.2 ms on an admin thread.
    """
    host, port = listen
    admin_thread = traffic_threads + 1
    lines = [
        "global",
        "  master-worker",
        # A second haproxy on our port must fail loudly, never split new connections with the first.
        "  noreuseport",
        f"  nbthread {admin_thread}",
        f"  maxconn {max_connections}",
        f"  stats socket unix@haproxy.sock mode 600 level admin expose-fd listeners thread {admin_thread}",
        f"  stats timeout {IDLE_SECONDS}s",
        f"  hard-stop-after {max(1, math.ceil(stop_seconds))}s",
        "defaults",
        "  mode http",
        "  option http-keep-alive",
        "  http-reuse safe",
        "  timeout connect 5s",
        "  timeout http-request 10s",
        "  timeout client 75s",
        "  timeout http-keep-alive 75s",
        "  timeout server 300s",
        "  timeout queue 30s",
        # Retries on a connection that failed (the request was never sent, so any method is safe), on
        # another server. No L7 retries (`retry-on empty-response`): to resend a request haproxy copies
        # the whole request buffer (tune.bufsize, 16 kB) for every request; side by side that cost 5-8%
        # of the req/s at 20 connections and 20% at 200 (10-30% more CPU per request). A request lost
        # with its connection after it was sent (a replica dying mid-request, a release closing an idle
        # connection as it is reused) fails: on a client's later request haproxy closes the client
        # connection without an answer, which clients retry when the method is idempotent (RFC 9112
        # §9.3.1); a first request gets a 502.
        # Switches lose nothing this way: they never close a connection a request is on.
        "  retries 3",
        "  option redispatch 1",
        "frontend public",
        f"  bind {host}:{port} thread 1-{traffic_threads}",
        f"  default_backend {BACKEND}",
        f"backend {BACKEND}",
        "  balance roundrobin",
    ]
    for server in servers.values():
        lines.append(f"  server {server.name} 127.0.0.1:{server.port} weight {max(server.weight, 0)} {_SERVER_OPTIONS}")
    return "\n".join(lines) + "\n"
