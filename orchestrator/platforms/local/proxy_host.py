"""The public address in a process of its own, so that it outlives the supervisor driving it.

The supervisor binds the listening socket and starts this process on it (inherited, `--listen-fd`),
keeping a copy: if this process dies, new connections wait in the socket's backlog until the
supervisor starts another one on the same socket. If the supervisor dies, this process goes on
serving the last routing table it was given, and (its watchdog) relaunches the supervisor, which
adopts this process again. Only requests in flight on a dying proxy can fail.

The routing (weights, sticky rule) comes from the `route_board` the supervisor writes (`--board-fd`),
which the data plane follows on its own; without a board (a supervisor from before boards started
this process), from `sync`.

Control operations on `proxy.sock` (see `channel`):
- `sync` {backends: {version: [ports]}, weights, sticky?: {cookie, header}, supervisor: {pid, pid_start},
  drain_seconds}:
  the whole table at once (idempotent; backends it does not list are dropped; weights and sticky
  are checked, and applied only without a board);
- `mark_down` {version, index}; `drain` {version, seconds} -> {drained, inflight};
- `status` -> {pid, pid_start, listen, weights, backends: {version: {ports, inflight}}, supervisor};
- `traffic` -> {version: counters} (`platforms.traffic.ReleaseTraffic.to_dict`), growing while it serves;
- `listen_socket` -> the listening socket itself, for a new supervisor's copy;
- `route_board` -> the board's file descriptor, for a new supervisor to write to;
- `stop` {drain_seconds}: stop accepting, let the requests in flight finish, exit (no relaunch).
SIGTERM is `stop` with the last `drain_seconds` it was given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from orchestrator.platforms.local import event_loop
from orchestrator.platforms.local.channel import OperationError, WithFd, serve
from orchestrator.platforms.local.control import launch_supervisor
from orchestrator.platforms.local.data_plane import DEFAULT_MAX_CONNECTIONS, DataPlane
from orchestrator.platforms.local.process import is_alive, process_start_ticks
from orchestrator.platforms.local.proxy import Limits, Proxy
from orchestrator.platforms.local.route_board import RouteBoard
from orchestrator.platforms.local.routing import check_weights
from orchestrator.platforms.local.state import StatePaths
from orchestrator.platforms.local.sticky import StickyRule
from orchestrator.redaction import install_filter

__all__ = ["ProxyHost", "main"]

log = logging.getLogger(__name__)

_WATCH_SECONDS = 0.1
_RELAUNCH_BACKOFF = (1.0, 30.0)


class ProxyHost:
    def __init__(
        self,
        paths: StatePaths,
        listen: str,
        sock: socket.socket,
        drain_seconds: float,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        board: RouteBoard | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._paths = paths
        self._listen = listen
        self._sock = sock
        self._drain_seconds = drain_seconds
        self._board = board
        self._proxy = Proxy(Limits(max_connections=max_connections), board)
        self._ports: dict[str, tuple[int, ...]] = {}
        self._supervisor: tuple[int, int] | None = None
        self._relaunch_at = 0.0
        self._backoff = _RELAUNCH_BACKOFF[0]
        self._stopping: asyncio.Future[float] | None = None
        self._pid = os.getpid()
        self._pid_start = process_start_ticks(self._pid) or 0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._stopping = loop.create_future()
        await self._proxy.serve_socket(self._sock)
        control = await serve(
            self._paths.proxy_socket.name,
            {
                "sync": self._op_sync,
                "mark_down": self._op_mark_down,
                "drain": self._op_drain,
                "status": self._op_status,
                "traffic": self._op_traffic,
                "listen_socket": self._op_listen_socket,
                "route_board": self._op_route_board,
                "stop": self._op_stop,
            },
            log_hint=str(self._paths.proxy_log),
        )
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: self._stop(self._drain_seconds))
        pid = self._pid
        self._paths.proxy_pid.write_text(json.dumps({"pid": pid, "pid_start": self._pid_start}))
        watchdog = asyncio.create_task(self._watch())
        log.info("proxy %d serving %s", pid, self._listen)
        drain = await self._stopping
        watchdog.cancel()
        control.close()
        await self._drain(drain)
        await self._proxy.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._paths.proxy_socket.name)
        log.info("proxy %d exits", pid)
        return 0

    def _stop(self, drain_seconds: float) -> None:
        if self._stopping is not None and not self._stopping.done():
            self._proxy.stop_accepting()
            self._stopping.set_result(drain_seconds)

    async def _drain(self, timeout: float) -> None:
        backends = [b for b in (self._proxy.backend(v) for v in self._ports) if b is not None and b.inflight]
        if not backends:
            return
        log.info("waiting up to %g s for %d requests in flight", timeout, sum(b.inflight for b in backends))
        if not all(await asyncio.gather(*(b.drain(timeout) for b in backends))):
            log.warning("%d requests still open after %g s: closing them", sum(b.inflight for b in backends), timeout)

    # --- the watchdog -----------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Relaunch the supervisor when it is gone; it adopts this process and syncs it again."""
        while True:
            await asyncio.sleep(_WATCH_SECONDS)
            if self._supervisor is None or is_alive(*self._supervisor):
                continue
            now = time.monotonic()
            if now < self._relaunch_at:
                continue
            self._relaunch_at, self._backoff = now + self._backoff, min(self._backoff * 2, _RELAUNCH_BACKOFF[1])
            log.warning("supervisor %d is gone: relaunching it", self._supervisor[0])
            try:
                # The launcher forks the daemon and waits for nothing else; keep it off the data path.
                data_plane = DataPlane("python", self._max_connections)
                await asyncio.to_thread(
                    launch_supervisor, self._paths, self._listen, self._drain_seconds, data_plane=data_plane
                )
            except Exception:
                log.exception("relaunching the supervisor failed; trying again in %g s", self._backoff)

    # --- operations ---------------------------------------------------------------------------------

    async def _op_sync(self, request: dict[str, Any]) -> dict[str, Any]:
        wanted = {str(v): tuple(int(p) for p in ports) for v, ports in request["backends"].items()}
        if any(not ports for ports in wanted.values()):
            raise OperationError("every backend needs at least one port")
        weights = check_weights({str(v): w for v, w in request["weights"].items()}, set(wanted)) if wanted else {}
        for version, ports in wanted.items():
            self._proxy.add_backend(version, *ports)
        if self._board is None:
            self._proxy.route(weights, StickyRule.from_dict(request.get("sticky")))
        for version in [v for v in self._ports if v not in wanted]:
            self._proxy.remove_backend(version)
        self._ports = wanted
        supervisor = request.get("supervisor")
        if supervisor is not None:
            self._supervisor = (int(supervisor["pid"]), int(supervisor["pid_start"]))
            self._backoff = _RELAUNCH_BACKOFF[0]
        if "drain_seconds" in request:
            self._drain_seconds = float(request["drain_seconds"])
        return await self._op_status(request)

    async def _op_mark_down(self, request: dict[str, Any]) -> None:
        self._proxy.mark_down(str(request["version"]), int(request["index"]))

    async def _op_drain(self, request: dict[str, Any]) -> dict[str, Any]:
        backend = self._proxy.backend(str(request["version"]))
        if backend is None:
            return {"drained": True, "inflight": 0}
        drained = await backend.drain(float(request["seconds"]))
        return {"drained": drained, "inflight": backend.inflight}

    async def _op_status(self, request: dict[str, Any]) -> dict[str, Any]:
        self._proxy.follow_board()  # the routing in force, even before a request took it
        backends = {}
        for version, ports in self._ports.items():
            backend = self._proxy.backend(version)
            backends[version] = {"ports": list(ports), "inflight": backend.inflight if backend else 0}
        return {
            "pid": self._pid,
            "pid_start": self._pid_start,
            "listen": self._listen,
            "weights": self._proxy.weights(),
            "backends": backends,
            "supervisor": None if self._supervisor is None else self._supervisor[0],
            "drain_seconds": self._drain_seconds,
        }

    async def _op_traffic(self, request: dict[str, Any]) -> dict[str, Any]:
        return {version: counters.to_dict() for version, counters in self._proxy.traffic().items()}

    async def _op_listen_socket(self, request: dict[str, Any]) -> WithFd:
        return WithFd({"listen": self._listen}, self._sock.fileno())

    async def _op_route_board(self, request: dict[str, Any]) -> WithFd:
        if self._board is None:
            raise OperationError("this proxy process has no routing board: its routing comes with sync")
        return WithFd({"board": True}, self._board.fd)

    async def _op_stop(self, request: dict[str, Any]) -> dict[str, Any]:
        drain = float(request.get("drain_seconds", self._drain_seconds))
        # Answer first: the caller waits for this process to exit, not for this reply.
        asyncio.get_running_loop().call_soon(self._stop, drain)
        return {"pid": os.getpid(), "drain_seconds": drain}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="deploy-orchestrator local platform proxy process")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--listen-fd", required=True, type=int)
    parser.add_argument("--drain-seconds", type=float, default=10.0)
    parser.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS)
    parser.add_argument("--board-fd", type=int, help="the routing board the supervisor writes (see route_board)")
    args = parser.parse_args(argv)
    paths = StatePaths(args.state_dir.resolve())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s proxy: %(message)s"))
    install_filter(handler)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    os.chdir(paths.root)
    sock = socket.socket(fileno=args.listen_fd)
    board = RouteBoard(args.board_fd) if args.board_fd is not None else None
    host = ProxyHost(paths, args.listen, sock, args.drain_seconds, args.max_connections, board)
    return event_loop.run(host.run())


if __name__ == "__main__":
    sys.exit(main())
