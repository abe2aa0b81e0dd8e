"""The per-request HTTP/1.1 reverse proxy in front of the release processes (the Python data plane).

`Proxy` holds the backends and the routing table and serves clients on one listening socket; how a
request is read and bounded is in `client`, how it reaches a replica in `exchange` and `upstream`, how
it is framed in `wire`. The data plane runs its own event loop on its own thread (uvloop when it is
installed), so the control calls (`route`, `add_backend`, ...) are answered by the caller's loop
however busy the traffic is. Those calls may come from any thread: a switch is one assignment of an
immutable table, and anything touching connections is handed to the data plane's loop. With a
`RouteBoard` (the proxy process has one), the routing comes from the board instead of `route`: the
data plane takes a new one before the next request it routes, without any call.

Connections are capped (`Limits.max_connections`, and never more than the file limit allows). At the
cap, a new connection takes the place of the oldest one still sending its head, else of the oldest
idle keep-alive one; when every connection has a request in flight, it is answered 503 and closed. So
a flood of half-sent requests (slowloris) cannot lock other clients out, and clients with a request
in flight are never cut for a newcomer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import resource
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.platforms.local.client import ClientConnection, Request
from orchestrator.platforms.local.data_plane import DEFAULT_MAX_CONNECTIONS
from orchestrator.platforms.local.event_loop import new_loop
from orchestrator.platforms.local.route_board import RouteBoard
from orchestrator.platforms.local.routing import RouteTable
from orchestrator.platforms.local.sticky import StickyRule, StickyTable
from orchestrator.platforms.local.upstream import Backend
from orchestrator.platforms.traffic import ReleaseTraffic

__all__ = ["DEFAULT_MAX_CONNECTIONS", "Limits", "Proxy", "connection_budget", "raise_file_limit"]

log = logging.getLogger(__name__)

_FDS_RESERVED = 128
"""File descriptors kept for everything but client connections (control socket, logs, state)."""
_FDS_PER_CLIENT = 3
"""A client connection, the upstream one it uses, and one idle in a pool."""
_SWITCH_INTERVAL = 0.0005
"""How soon a thread waiting for the GIL (the control loop) gets it from a busy data plane."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection bounds of the data plane (see `client`)."""

    max_connections: int = DEFAULT_MAX_CONNECTIONS
    idle_seconds: float = 75.0
    head_seconds: float = 10.0
    io_seconds: float = 60.0
    upstream_seconds: float = 300.0
    max_head_bytes: int = 64 * 1024
    max_buffered_body: int = 1 << 20

    @property
    def shortest(self) -> float:
        return min(self.idle_seconds, self.head_seconds, self.io_seconds, self.upstream_seconds)


def raise_file_limit() -> int:
    """Raise the soft open-file limit to the hard one (the common soft default, 1,024, is far too few
    for a proxy), say what it got, and return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("open-file limit stays at %d (could not raise it to %d: %s)", soft, hard, exc)
            return int(soft)
        log.info("open-file limit raised from %d to %d (the hard limit)", soft, hard)
        return int(hard)
    log.info("open-file limit: %d (already the hard limit)", soft)
    return int(soft)


def connection_budget(requested: int) -> int:
    """`requested`, lowered so that client connections cannot exhaust the soft file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return requested
    return max(1, min(requested, (soft - _FDS_RESERVED) // _FDS_PER_CLIENT))


class Proxy:
    """The routing table and the backends; serves clients on one listening socket from its own thread."""

    def __init__(self, limits: Limits | None = None, board: RouteBoard | None = None) -> None:
        self.limits = limits or Limits()
        self.board = board
        self.generation = b""
        """The board generation the table was built from (b"": none yet, or to be rebuilt)."""
        self._following = threading.Lock()
        self._backends: dict[str, Backend] = {}
        self._table: RouteTable[Backend] = RouteTable()
        self._weights: dict[str, int] = {}
        self._sticky_rule: StickyRule | None = None
        self.sticky: StickyTable | None = None
        """Set while clients are pinned (a sticky canary); None: every request is picked by weight."""
        self._clients: set[ClientConnection] = set()
        self._heading: dict[ClientConnection, None] = {}
        self._idle: dict[ClientConnection, None] = {}
        self._cap = self.limits.max_connections
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    # --- control (from any thread) ---------------------------------------------------------------

    def add_backend(self, version: str, *ports: int) -> None:
        """Serve `version` from its replicas on `ports` (replica i on ports[i]). Idempotent."""
        current = self._backends.get(version)
        if current is not None and current.ports == ports and not current.closed:
            return
        meter = current.meter if current is not None else None
        self._backends[version] = Backend(version, ports, max_idle=self._cap, meter=meter)
        if current is not None:
            self._on_data_loop(current.close)
            if self.board is None:
                self.route(self.weights())
        with self._following:
            self.generation = b""  # the board's routing may name it: built again at the next request

    def mark_down(self, version: str, index: int) -> None:
        """The supervisor saw replica `index` of `version` exit: send nothing to it for a while."""
        backend = self._backends.get(version)
        if backend is not None and index < len(backend.upstreams):
            self._on_data_loop(backend.upstreams[index].mark_down)

    def remove_backend(self, version: str) -> None:
        backend = self._backends.pop(version, None)
        if backend is not None:
            self._on_data_loop(backend.close)

    def backend(self, version: str) -> Backend | None:
        return self._backends.get(version)

    def traffic(self) -> dict[str, ReleaseTraffic]:
        """Each release's counters since the proxy began serving it (see `meter`)."""
        return {version: backend.meter.reading() for version, backend in list(self._backends.items())}

    def route(self, weights: Mapping[str, int], sticky: StickyRule | None = None) -> None:
        """Replace the routing table in one assignment; the next request picked uses it. With `sticky`
        and more than one release, clients are pinned while the share is held to `weights` (`sticky`)."""
        same = dict(weights) == self._weights and sticky == self._sticky_rule
        self._table = RouteTable.build(weights, self._backends)
        self._weights = dict(weights)
        self._sticky_rule = sticky
        if same and self.sticky is not None:
            return  # the same table pushed again (a resync): its counts and pins go on
        split = sum(w > 0 for w in weights.values()) > 1
        table = StickyTable(weights, sticky) if sticky is not None and split else None
        if table is not None:
            table.carry_pins(self.sticky)
        self.sticky = table

    def weights(self) -> dict[str, int]:
        return dict(self._weights)

    def follow_board(self) -> None:
        """Take the board's routing if it is newer than the table's (on any thread; the data plane calls
        it before each request it routes). A routing naming a release not added yet waits for it."""
        board = self.board
        if board is None or board.generation() == self.generation:
            return  # the common case, every request: no lock
        with self._following:  # two threads taking turns must not leave the older routing in place
            if board.generation() == self.generation:
                return
            routing = board.read()
            if routing is None:
                return  # being written: the next request looks again
            if any(version not in self._backends for version, weight in routing.weights.items() if weight > 0):
                return  # the backends follow by `sync`, which rebuilds then
            self.route(routing.weights, StickyRule.from_dict(routing.sticky))
            self.generation = routing.generation

    @property
    def max_connections(self) -> int:
        """The cap in force (the configured one, lowered to what the file limit allows)."""
        return self._cap

    async def serve(self, host: str, port: int) -> None:
        """Start the data plane's thread listening on host:port. Raises OSError if it cannot listen."""
        await self._start({"host": host, "port": port, "reuse_address": True})

    async def serve_socket(self, sock: socket.socket) -> None:
        """Serve clients on a socket that already listens (one inherited by a proxy process, say)."""
        await self._start({"sock": sock})

    async def _start(self, where: dict[str, Any]) -> None:
        raise_file_limit()
        self._cap = connection_budget(self.limits.max_connections)
        if self._cap < self.limits.max_connections:
            log.warning(
                "the open-file limit allows %d client connections, not the %d configured",
                self._cap,
                self.limits.max_connections,
            )
        for backend in list(self._backends.values()):
            for upstream in backend.upstreams:
                upstream.max_idle = self._cap
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(where, ready), name="data-plane", daemon=True)
        self._thread.start()
        await asyncio.wrap_future(ready)
        sys.setswitchinterval(_SWITCH_INTERVAL)

    def stop_accepting(self) -> None:
        """Stop taking new clients; the connections open go on."""
        if self._server is not None:
            self._on_data_loop(self._server.close)

    async def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._shut(), loop))
            loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, 5.0)
        self._loop = self._thread = None

    # --- the data plane's thread ----------------------------------------------------------------

    def _run(self, where: dict[str, Any], ready: concurrent.futures.Future[None]) -> None:
        loop = new_loop()
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                loop.create_server(lambda: ClientConnection(self), backlog=4096, **where)
            )
        except OSError as exc:
            ready.set_exception(exc)
            loop.close()
            return
        self._loop = loop
        ready.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
        for client in list(self._clients):
            client.close()
        for backend in list(self._backends.values()):
            backend.close()
        # Closed transports end their exchanges at once; give the kernel a moment to flush them.
        await asyncio.sleep(0)

    def _on_data_loop(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            fn()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn()
        else:
            loop.call_soon_threadsafe(fn)

    # --- used by client connections (on the data plane's loop) -----------------------------------

    def pick(self) -> Backend | None:
        return self._table.pick()

    def pick_pinned(self, request: Request) -> Backend | None:
        """The backend for `request` under sticky sessions; sets the request's `set_cookie`."""
        table = self.sticky
        if table is None:  # the sticky canary ended between the caller's look and this one
            return self.pick()
        pin = table.choose(request.pin_headers)
        if pin is None:
            return None
        request.set_cookie = pin.set_cookie
        return self._backends.get(pin.version)

    def admit(self, client: ClientConnection) -> bool:
        """Take a new connection, making room at the cap (see the module docstring); False if refused."""
        if len(self._clients) >= self._cap:
            victim = next(iter(self._heading), None) or next(iter(self._idle), None)
            if victim is None:
                return False
            self.leave(victim)
            victim.abort()
        self._clients.add(client)
        self._idle[client] = None
        return True

    def heading(self, client: ClientConnection) -> None:
        self._idle.pop(client, None)
        self._heading[client] = None

    def busy(self, client: ClientConnection) -> None:
        self._heading.pop(client, None)
        self._idle.pop(client, None)

    def idle(self, client: ClientConnection) -> None:
        self._idle[client] = None

    def leave(self, client: ClientConnection) -> None:
        self._clients.discard(client)
        self._heading.pop(client, None)
        self._idle.pop(client, None)
