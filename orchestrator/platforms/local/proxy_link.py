"""The supervisor's side of the proxy process: adopt it or start it, push the routing table, restart it.

The supervisor holds a copy of the listening socket (bound by it, or received from the proxy
process it adopts), so a proxy process that dies leaves the address accepting into the backlog
until the next one, started on that same socket, serves it. It holds the routing board the same way
(`route_board`): a route call writes the board and is in effect at once, with no round trip to the
proxy process; backends still go by `sync`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Mapping
from typing import Any

from orchestrator.platforms.local.channel import Caller, NotListeningError, RefusedError, ask_for_fd
from orchestrator.platforms.local.child import Child, ChildStartError
from orchestrator.platforms.local.data_plane import DEFAULT_MAX_CONNECTIONS
from orchestrator.platforms.local.process import process_start_ticks
from orchestrator.platforms.local.route_board import RouteBoard
from orchestrator.platforms.local.state import StatePaths

__all__ = ["ProxyLink", "ProxyStartError", "parse_listen"]

log = logging.getLogger(__name__)

_START_SECONDS = 15.0
_ASK_SECONDS = 5.0
_EXIT_MARGIN_SECONDS = 5.0


class ProxyStartError(Exception):
    """The proxy process could not be started; the message says why."""


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if host == "localhost":
        host = "127.0.0.1"
    return host, int(port)


class ProxyLink:
    def __init__(
        self, paths: StatePaths, listen: str, drain_seconds: float, max_connections: int = DEFAULT_MAX_CONNECTIONS
    ) -> None:
        self._max_connections = max_connections
        self._paths = paths
        self._listen = listen
        self.drain_seconds = drain_seconds
        self._sock: socket.socket | None = None
        self._child = Child("proxy process", paths.proxy_log)
        self._caller = Caller(paths.proxy_socket)
        """Keeps its connections: a sync is one round trip to the proxy process."""
        self._starting = asyncio.Lock()
        self._board: RouteBoard | None = None
        """None: the proxy process adopted has none (it came before boards), its routing goes by `sync`."""
        pid = os.getpid()
        self._supervisor = {"pid": pid, "pid_start": process_start_ticks(pid) or 0}
        """Ourselves, for the proxy's watchdog (read once: a route call should not read /proc)."""

    @property
    def pid(self) -> int | None:
        return self._child.pid

    async def attach(self) -> bool:
        """Adopt the proxy process serving our address (True), or bind it and start one (False).

        Raises OSError if the address cannot be bound, ProxyStartError if the process does not come up.
        """
        status = await self.status()
        if status is not None and status["listen"] == self._listen:
            _, fd = await asyncio.to_thread(ask_for_fd, self._paths.proxy_socket, "listen_socket")
            self._sock = socket.socket(fileno=fd)
            try:
                _, board_fd = await asyncio.to_thread(ask_for_fd, self._paths.proxy_socket, "route_board")
                self._board = RouteBoard(board_fd)
            except RefusedError:
                log.info("the proxy process has no routing board: routing goes with sync until it is replaced")
            self._child.adopt((int(status["pid"]), int(status["pid_start"])))
            log.info("adopted proxy process %d serving %s", self._child.pid, self._listen)
            return True
        if status is not None:
            log.warning("the proxy process serves %s, not %s: replacing it", status["listen"], self._listen)
            self._child.adopt((int(status["pid"]), int(status["pid_start"])))
            await self.stop(0.0)
        self._sock = socket.create_server(parse_listen(self._listen), backlog=1024)
        await self._spawn()
        return False

    def alive(self) -> bool:
        return self._child.alive()

    async def ensure(self, unanswered: bool = False) -> bool:
        """Start a new proxy process on our socket if the one we drive is gone; True if it was.
        `unanswered`: the caller saw it refuse, so one still alive is given time to answer or be seen
        gone, and killed if it stays silent. A call made while another is starting it returns once that
        one is up (the monitor's start would otherwise look alive to a switch, yet not answer it)."""
        async with self._starting:
            return await self._child.revive(self._answers, self._spawn, unanswered=unanswered, where=self._listen)

    async def _answers(self) -> bool:
        return await self.status() is not None

    async def _spawn(self) -> None:
        assert self._sock is not None
        fd = self._sock.fileno()
        if self._board is None:
            self._board = RouteBoard.create()
        argv = [sys.executable, "-m", "orchestrator.platforms.local.proxy_host"]
        argv += ["--state-dir", str(self._paths.root), "--listen", self._listen, "--listen-fd", str(fd)]
        argv += ["--drain-seconds", str(self.drain_seconds), "--max-connections", str(self._max_connections)]
        argv += ["--board-fd", str(self._board.fd)]

        try:
            await self._child.start(
                argv, cwd=self._paths.root, ready=self._answers, timeout=_START_SECONDS, pass_fds=(fd, self._board.fd)
            )
        except ChildStartError as exc:
            raise ProxyStartError(str(exc)) from exc
        log.info("proxy process %d serving %s", self._child.pid, self._listen)

    async def _ask(self, op: str, timeout: float = _ASK_SECONDS, **args: Any) -> Any:
        return await self._caller.ask(op, timeout=timeout, **args)

    async def status(self) -> dict[str, Any] | None:
        """The proxy process's own account of what it serves, or None if none answers."""
        try:
            result: dict[str, Any] = await self._ask("status")
        except (NotListeningError, TimeoutError, OSError):
            return None
        return result

    async def sync(
        self,
        backends: Mapping[str, tuple[int, ...]],
        weights: Mapping[str, int],
        sticky: Mapping[str, str | None] | None = None,
    ) -> None:
        """Make the proxy serve exactly `backends` with `weights` (clients pinned by `sticky`, if given).
        Raises NotListeningError, RefusedError."""
        if self._board is not None:
            self._board.write(weights, sticky)
        await self._ask(
            "sync",
            backends={version: list(ports) for version, ports in backends.items()},
            weights=dict(weights),
            sticky=dict(sticky) if sticky else None,
            supervisor=self._supervisor,
            drain_seconds=self.drain_seconds,
        )

    def route(self, weights: Mapping[str, int], sticky: Mapping[str, str | None] | None = None) -> bool:
        """Route by `weights` through the board, for the backends synced last; True once in effect (the
        data plane takes it before its next request). False when that takes a `sync`: no board, or no
        proxy process running."""
        if self._board is None or not self.alive():
            return False
        self._board.write(weights, sticky)
        return True

    async def traffic(self) -> dict[str, Any]:
        """Each release's counters as the proxy process keeps them. Raises NotListeningError, OSError."""
        result: dict[str, Any] = await self._ask("traffic")
        return {"source": "python", "releases": result}

    async def mark_down(self, version: str, index: int) -> None:
        """A hint that spares the proxy one failed connect; lost when the proxy is away."""
        with contextlib.suppress(NotListeningError, RefusedError, TimeoutError, OSError):
            await self._ask("mark_down", version=version, index=index)

    async def drain(self, version: str, timeout: float) -> bool:
        """Wait until no request to `version` is in flight; False if some still are after `timeout`."""
        try:
            result = await self._ask("drain", timeout=timeout + _ASK_SECONDS, version=version, seconds=timeout)
        except (NotListeningError, TimeoutError, OSError):
            return True
        return bool(result["drained"])

    async def stop(self, drain_seconds: float) -> None:
        """Stop accepting at once, let the proxy finish its requests in flight (at most `drain_seconds`),
        and return once its process exited (killed if it overstays)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with contextlib.suppress(NotListeningError, RefusedError, TimeoutError, OSError):
            await self._ask("stop", drain_seconds=drain_seconds)
        self._caller.close()
        await self._child.wait_gone(drain_seconds + _EXIT_MARGIN_SECONDS)
