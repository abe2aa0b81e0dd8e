"""The supervisor: drives the proxy process and the release processes, and answers the control socket.

It runs as a daemon (see `daemon`). It keeps the live release serving after the orchestrator
exits, keeps releases without traffic running for instant rollback until they are retired, runs
each release as `replicas` processes (one port each) and restarts any that dies, and records
everything in `state.json`. The public address is served by a proxy process of its own
(`proxy_host`), which the supervisor starts, pushes the routing table to and restarts if it dies;
the proxy outlives a supervisor that dies and relaunches it, and the new supervisor adopts the
proxy and the replicas that still run. SIGTERM stops the front: the address stops accepting, the
requests in flight finish (at most `drain_seconds`), the proxy and the supervisor exit; the releases
keep running and the next supervisor re-adopts them. The `shutdown` operation stops everything.
Taking a release out of service (stop, retire) is in `retirement`, restarting replicas in `keeper`.

Control protocol: see `channel`, on the unix socket `control.sock`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from orchestrator.platforms.local.channel import NotListeningError, OperationError, RefusedError, serve
from orchestrator.platforms.local.data_plane import DEFAULT, DataPlane
from orchestrator.platforms.local.haproxy import HaproxyError
from orchestrator.platforms.local.keeper import RESTART_BACKOFF
from orchestrator.platforms.local.links import make_link
from orchestrator.platforms.local.process import (
    ReleaseStartError,
    free_ports,
    is_alive,
    replica_name,
    spawn_all,
    substitute,
    terminate_all,
    wait_all_ready,
)
from orchestrator.platforms.local.proxy import raise_file_limit
from orchestrator.platforms.local.proxy_link import ProxyStartError, parse_listen
from orchestrator.platforms.local.retirement import Retirement
from orchestrator.platforms.local.routing import check_weights
from orchestrator.platforms.local.snapshot import SnapshotError, remove
from orchestrator.platforms.local.state import (
    ReleaseRecord,
    Replica,
    RetiredRelease,
    State,
    StatePaths,
    check_version,
    load_state,
    save_routing,
    save_state,
)
from orchestrator.platforms.local.sticky import StickyRule

__all__ = ["Supervisor", "parse_listen"]

log = logging.getLogger(__name__)

_MAX_REPLICAS = 16
_JOURNAL_LINES = 1000
"""Route calls journaled before the next one writes the whole state instead (which empties the journal)."""
_Result = dict[str, Any]


class Supervisor(Retirement):
    def __init__(
        self, paths: StatePaths, listen: str, drain_seconds: float = 10.0, data_plane: DataPlane = DEFAULT
    ) -> None:
        super().__init__()
        self._paths = paths
        self._listen = listen
        self._data_plane = data_plane
        self._link = make_link(data_plane, paths, listen, drain_seconds)
        self._releases: dict[str, ReleaseRecord] = {}
        self._popens: dict[str, dict[int, subprocess.Popen[bytes]]] = {}
        """version -> replica index -> the process we launched (re-adopted ones have none)."""
        self._published: dict[str, tuple[int, ...]] = {}
        """The releases the proxy may send requests to, and their replicas' ports."""
        self._synced = False
        """Whether the proxy process has the current table; the monitor pushes it again when not."""
        self._weights: dict[str, int] = {}
        self._sticky: StickyRule | None = None
        self._live: str | None = None
        self._next_seq = 1
        self._stopping: set[str] = set()
        self._retired: tuple[RetiredRelease, ...] = ()
        self._done = asyncio.Event()
        self._exit_drain: float | None = None
        self._journaled = 0
        self._ops: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "status": self._op_status,
            "start": self._op_start,
            "route": self._op_route,
            "traffic": self._op_traffic,
            "retire": self._op_retire,
            "stop": self._op_stop,
            "shutdown": self._op_shutdown,
        }

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> int:
        # The proxy process it starts inherits the limit: at the common 1,024, a thousand half-sent
        # requests would take every file descriptor.
        raise_file_limit()
        saved = load_state(self._paths)
        if saved is not None:
            self._restore(saved)
            self._save()  # folds the routing journal in (a supervisor that died mid-append left a cut line)
        try:
            await self._link.attach()
        except (OSError, ProxyStartError, HaproxyError, NotListeningError, RefusedError) as exc:
            log.error("cannot serve %s: %s (another process uses it? change local.listen)", self._listen, exc)
            return 1
        self._published = {r.version: tuple(x.port for x in r.replicas) for r in self._releases.values()}
        await self._push()
        control = await serve(self._paths.socket.name, self._ops, log_hint=str(self._paths.supervisor_log))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._done.set)
        monitor = asyncio.create_task(self._monitor())
        log.info("supervisor %d serving %s, state in %s", os.getpid(), self._listen, self._paths.root)
        await self._done.wait()
        monitor.cancel()
        control.close()
        # After `shutdown` the releases are gone already: nothing is in flight to wait for.
        drain = self._link.drain_seconds if self._exit_drain is None else self._exit_drain
        await self._link.stop(drain)
        self._paths.socket.unlink(missing_ok=True)
        log.info("supervisor %d exits", os.getpid())
        return 0

    async def _push(self) -> None:
        """Give the proxy process the current table; on failure the monitor tries again."""
        weights = {v: w for v, w in self._weights.items() if v in self._published}
        try:
            await self._link.sync(self._published, weights, self._sticky.to_dict() if self._sticky else None)
        except (NotListeningError, RefusedError, HaproxyError, TimeoutError, OSError) as exc:
            self._synced = False
            log.warning("the proxy process did not take the routing table (%s); retrying", exc)
            return
        self._synced = True

    async def _switch(self) -> None:
        """Route by the current weights: through the routing board when the data plane has one and the
        backends it serves are current (no round trip), else by pushing the table, restarting the proxy
        process once if it does not take it. Raises OperationError."""
        if self._synced and self._link.route(self._weights, self._sticky.to_dict() if self._sticky else None):
            return
        await self._push()
        if not self._synced:
            await self._link.ensure(unanswered=True)
            await self._push()
        if not self._synced:
            raise OperationError(f"the proxy process did not take the new routing; see {self._paths.proxy_log}")

    def _restore(self, saved: State) -> None:
        if saved.listen != self._listen:
            log.warning("state says listen %s; serving %s as configured now", saved.listen, self._listen)
        self._releases = dict(saved.releases)
        self._weights = {v: w for v, w in saved.weights.items() if v in self._releases}
        self._live = saved.live
        self._next_seq = saved.next_seq
        self._retired = saved.retired
        self._sticky = saved.sticky
        for record in self._releases.values():
            for index, replica in enumerate(record.replicas):
                if is_alive(replica.pid, replica.pid_start):
                    name = replica_name(record, index)
                    log.info("re-adopted %s (pid %d, port %d)", name, replica.pid, replica.port)
                else:
                    self._restart[(record.version, index)] = (0.0, RESTART_BACKOFF[0])

    def _save(self) -> None:
        state = State(
            listen=self._listen,
            releases=self._releases,
            weights=self._weights,
            live=self._live,
            next_seq=self._next_seq,
            drain_seconds=self._link.drain_seconds,
            data_plane=self._data_plane,
            retired=self._retired,
            sticky=self._sticky,
        )
        save_state(self._paths, state)
        self._journaled = 0

    def _save_routing(self) -> None:
        """Record the routing: one append to the journal, and now and then the whole state (see `state`)."""
        if self._journaled >= _JOURNAL_LINES:
            self._save()
            return
        save_routing(self._paths, self._weights, self._live, self._sticky)
        self._journaled += 1

    # --- control socket -------------------------------------------------------------------------

    async def _op_status(self, request: dict[str, Any]) -> _Result:
        newest_first = sorted(self._releases.values(), key=lambda r: r.seq, reverse=True)
        proxy = await self._link.status()
        served = proxy["backends"] if proxy else {}
        releases = [self._describe(r, served.get(r.version, {}).get("inflight", 0)) for r in newest_first]
        retired = [dataclasses.asdict(r) for r in self._retired]
        for item in () if request.get("gated") else (*releases, *retired):
            item.pop("gated", None)  # thousands of files per release: megabytes a status, so only on request
        return {
            "pid": os.getpid(),
            "listen": self._listen,
            "live": self._live,
            "weights": self._weights,
            "drain_seconds": self._link.drain_seconds,
            "proxy": {
                "up": proxy is not None,
                "pid": proxy["pid"] if proxy else self._link.pid,
                "weights": proxy["weights"] if proxy else {},
                "in_sync": proxy is not None and self._synced,
                "kind": self._data_plane.kind,
                "max_connections": self._data_plane.max_connections,
            },
            "releases": releases,
            "retired": retired,
        }

    async def _op_start(self, request: dict[str, Any]) -> _Result:
        version = check_version(str(request["version"]))
        self._take_drain_seconds(request)
        # Absent from older clients: they always ran one process.
        count = request.get("replicas", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= _MAX_REPLICAS:
            raise OperationError(f"replicas is {count!r}: use an integer from 1 to {_MAX_REPLICAS}")
        release_dir, tree_digest = str(request.get("release_dir", "")), str(request.get("tree_digest", ""))
        gated = tuple((str(a), str(b), str(c)) for a, b, c in request.get("gated", ()))
        async with self._lock(version):
            current = self._releases.get(version)
            if current is not None and current.tree_digest and current.tree_digest != tree_digest:
                raise OperationError(
                    f"release {version} is kept with snapshot digest {current.tree_digest}, and this start brings "
                    f"{tree_digest or 'no snapshot'}: a version label names one set of files; deploy the new "
                    "files under a new version label"
                )
            # A release with a replica still running is up: the monitor restarts the others.
            if current is not None and any(is_alive(r.pid, r.pid_start) for r in current.replicas):
                # One recorded before snapshots goes on running; it is never started from the workspace.
                if current.release_dir:
                    try:
                        await self._verified(current)
                    except SnapshotError as exc:
                        raise OperationError(str(exc)) from exc
                return self._describe(current)
            in_use = {r.port for release in self._releases.values() for r in release.replicas}
            template = [str(arg) for arg in request["argv"]]
            ports = free_ports(count, in_use | {parse_listen(self._listen)[1]})
            record = ReleaseRecord.of(
                version,
                [
                    Replica(port, substitute(template, port=port, version=version, release_dir=release_dir))
                    for port in ports
                ],
                cwd=str(request["cwd"]),
                env=tuple((str(k), str(v)) for k, v in request.get("env", ())),
                seq=current.seq if current is not None else self._next_seq,
                started_at=time.time(),
                startup_timeout=float(request["startup_timeout"]),
                image=request.get("image"),
                release_dir=release_dir,
                tree_digest=tree_digest,
                gated=gated,
            )
            try:
                await self._verified(record)
            except SnapshotError as exc:
                raise OperationError(str(exc)) from exc
            log_of = functools.partial(self._paths.replica_log, version)
            try:
                record, popens = spawn_all(record, log_of)
            except OSError as exc:
                raise OperationError(
                    f"cannot run local.command {template!r} in {record.cwd}: {exc}; "
                    "check the program name and local.cwd"
                ) from exc
            previous_popens = self._popens.get(version, {})
            previous_restarts = {k: v for k, v in self._restart.items() if k[0] == version}
            self._popens[version] = dict(popens)
            self._releases[version] = record
            self._drop_restarts(version)
            if current is None:
                self._next_seq += 1
            self._save()
            try:
                await wait_all_ready(record, popens, log_of)
            except ReleaseStartError as exc:
                await terminate_all(record, popens)
                if current is None and not self._weights.get(version, 0):
                    self._forget(version)
                    await asyncio.to_thread(remove, Path(release_dir))
                else:
                    # A release we had (perhaps with traffic, still pointing at its old ports): keep
                    # its record, so that the monitor goes on restarting it where the proxy looks.
                    self._releases[version] = current if current is not None else record
                    self._popens[version] = dict(previous_popens)
                    self._restart.update(previous_restarts)
                    self._save()
                raise OperationError(str(exc)) from exc
            self._published[version] = tuple(ports)
            await self._push()
            log.info("release %s up: %s", version, ", ".join(f"pid {r.pid} port {r.port}" for r in record.replicas))
            return self._describe(record)

    async def _op_route(self, request: dict[str, Any]) -> _Result:
        # A release still starting has no backend yet: it cannot take traffic before it listens.
        running = {v for v in self._releases if v not in self._stopping and v in self._published}
        weights = check_weights(dict(request["weights"]), running)
        self._weights = weights
        # Saved with the weights: pushed again without it after a restart, the split would re-deal pinned clients.
        self._sticky = StickyRule.from_dict(request.get("sticky"))
        if len(weights) == 1:
            self._live = next(iter(weights))
        # The routing on disk first, then the switch: a supervisor restarted right after never routes differently.
        self._save_routing()
        await self._switch()
        log.info("routing %s", weights)
        return {"weights": weights, "live": self._live}

    async def _op_traffic(self, request: dict[str, Any]) -> _Result:
        """The data plane's per-release counters (`platforms.traffic.TrafficSample.to_dict`)."""
        return await self._link.traffic()  # one that does not answer is refused with its error

    async def _op_shutdown(self, request: dict[str, Any]) -> _Result:
        """Stop every release and the proxy, forget the state, and exit."""
        self._weights = {}
        self._published = {}
        await self._push()
        records = list(self._releases.values())
        self._stopping.update(r.version for r in records)
        await asyncio.gather(*(terminate_all(r, self._popens.get(r.version, {})) for r in records))
        self._releases.clear()
        self._paths.routing.unlink(missing_ok=True)
        self._paths.state.unlink(missing_ok=True)
        await asyncio.to_thread(remove, self._paths.releases)
        self._exit_drain = 0.0
        self._done.set()
        return {"stopped": [r.version for r in records]}
