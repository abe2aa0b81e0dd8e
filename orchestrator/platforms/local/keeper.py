"""Keeping replicas running: the supervisor's monitor, restarts from verified snapshots, health probes.

A replica that dies is restarted with backoff, on its port, from its release's snapshot, and only
after the snapshot's tree digest was checked again: a release whose snapshot is missing or changed
is not restarted (its status says why) rather than run with other files than were validated. Every
second each running replica is probed (does it accept TCP on its port) for `local status`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import subprocess
import time
from pathlib import Path
from typing import Any

from orchestrator.platforms.local.links import DataPlaneLink
from orchestrator.platforms.local.process import is_alive, process_start_ticks, replica_name, spawn
from orchestrator.platforms.local.snapshot import SnapshotError, purge_bytecode, verify
from orchestrator.platforms.local.state import ReleaseRecord, StatePaths

__all__ = ["ReplicaKeeper"]

log = logging.getLogger(__name__)

_MONITOR_SECONDS = 0.25
_PROBE_EVERY = 4
_PROBE_SECONDS = 0.5
RESTART_BACKOFF = (0.5, 30.0)
_Result = dict[str, Any]


class ReplicaKeeper:
    """The monitor half of the supervisor (which owns the state and the control operations)."""

    _paths: StatePaths
    _link: DataPlaneLink
    _releases: dict[str, ReleaseRecord]
    _popens: dict[str, dict[int, subprocess.Popen[bytes]]]
    _weights: dict[str, int]
    _stopping: set[str]
    _synced: bool

    def __init__(self) -> None:
        self._restart: dict[tuple[str, int], tuple[float, float]] = {}
        """(version, replica index) -> (when to try again, current backoff) for replicas that died."""
        self._refused: dict[str, str] = {}
        """version -> why its replicas are not restarted (its snapshot is missing or changed)."""
        self._health: dict[tuple[str, int], dict[str, Any]] = {}
        """(version, replica index) -> the last probe: {"ok", "at", "detail"}."""
        self._locks: dict[str, asyncio.Lock] = {}

    def _save(self) -> None:
        raise NotImplementedError

    async def _push(self) -> None:
        raise NotImplementedError

    def _lock(self, version: str) -> asyncio.Lock:
        return self._locks.setdefault(version, asyncio.Lock())

    async def _monitor(self) -> None:
        """Keep the proxy process up and in sync; reap exited children and restart replicas that died."""
        rounds = 0
        while True:
            await asyncio.sleep(_MONITOR_SECONDS)
            try:
                if await self._link.ensure():
                    self._synced = False
                if not self._synced:
                    await self._push()
                await self._check_replicas()
                rounds += 1
                if rounds % _PROBE_EVERY == 0:
                    await self._probe_all()
            except Exception:
                # One bad round (a state file that cannot be written, say) must not end the restarts.
                log.exception("monitor: checking replicas failed; trying again in %g s", _MONITOR_SECONDS)

    async def _check_replicas(self) -> None:
        """One monitor round."""
        for popens in self._popens.values():
            for popen in popens.values():
                popen.poll()
        now = time.monotonic()
        for version, record in list(self._releases.items()):
            if version in self._stopping or self._lock(version).locked():
                continue
            for index, replica in enumerate(record.replicas):
                key = (version, index)
                if is_alive(replica.pid, replica.pid_start):
                    self._restart.pop(key, None)
                    continue
                when, backoff = self._restart.setdefault(key, (now, RESTART_BACKOFF[0]))
                if when == now:
                    # The proxy would find out at its next connect; telling it spares that attempt.
                    await self._link.mark_down(version, index)
                if now >= when:
                    self._restart[key] = (now + backoff, min(backoff * 2, RESTART_BACKOFF[1]))
                    await self._respawn(version, index)

    async def _verified(self, record: ReleaseRecord) -> None:
        """Raise SnapshotError unless the release's snapshot is what was captured; then clear its bytecode."""
        if not record.release_dir:
            raise SnapshotError(
                f"release {record.version} has no snapshot (it was recorded before releases were captured), so "
                "its files cannot be told from the shared workspace; refusing to run it: deploy it again"
            )
        release_dir = Path(record.release_dir)
        await asyncio.to_thread(verify, release_dir, record.tree_digest, version=record.version)
        await asyncio.to_thread(purge_bytecode, release_dir)

    async def _respawn(self, version: str, index: int) -> None:
        """Restart one dead replica, under the release's lock: a start or retire of it meanwhile would
        otherwise store its own record beside ours, and one set of processes would be lost to the state."""
        lock = self._lock(version)
        if lock.locked():
            return  # a start or retire of it is under way: that decides what runs
        async with lock:
            record = self._releases.get(version)
            if record is None or version in self._stopping or index >= len(record.replicas):
                return
            replica, name = record.replicas[index], replica_name(record, index)
            if is_alive(replica.pid, replica.pid_start):
                return
            try:
                await self._verified(record)
            except SnapshotError as exc:
                if self._refused.get(version) != str(exc):
                    log.error("%s (pid %d) died and is not restarted: %s", name, replica.pid, exc)
                self._refused[version] = str(exc)
                return
            self._refused.pop(version, None)
            if version in self._stopping or self._releases.get(version) is not record:
                return  # shut down (which takes no release lock) while its snapshot was checked
            log.warning("%s (pid %d) died: restarting it on port %d", name, replica.pid, replica.port)
            try:
                popen = spawn(record, index, self._paths.replica_log(version, index))
            except OSError as exc:
                log.error("cannot restart %s: %s", name, exc)
                return
            self._popens.setdefault(version, {})[index] = popen
            restarted = dataclasses.replace(replica, pid=popen.pid, pid_start=process_start_ticks(popen.pid) or 0)
            self._releases[version] = record.with_replica(index, restarted)
            self._save()

    async def _probe_all(self) -> None:
        targets = [
            (record.version, index, replica.port)
            for record in list(self._releases.values())
            for index, replica in enumerate(record.replicas)
            if is_alive(replica.pid, replica.pid_start)
        ]
        await asyncio.gather(*(self._probe(*target) for target in targets))

    async def _probe(self, version: str, index: int, port: int) -> None:
        try:
            async with asyncio.timeout(_PROBE_SECONDS):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            result = {"ok": True, "detail": f"accepts TCP on port {port}"}
        except (OSError, TimeoutError) as exc:
            result = {"ok": False, "detail": f"port {port}: {exc!r}"}
        self._health[(version, index)] = {**result, "at": time.time()}

    def _describe(self, record: ReleaseRecord, inflight: int = 0) -> _Result:
        """The release for `status` and `start`; `port`, `pid` and `log` are replica 0's, `alive` means all run."""
        replicas = [
            {
                "index": index,
                "port": replica.port,
                "pid": replica.pid,
                "alive": is_alive(replica.pid, replica.pid_start),
                "log": str(self._paths.replica_log(record.version, index)),
                "health": self._health.get((record.version, index)),
            }
            for index, replica in enumerate(record.replicas)
        ]
        return {
            "version": record.version,
            "port": record.port,
            "pid": record.pid,
            "alive": all(replica["alive"] for replica in replicas),
            "weight": self._weights.get(record.version, 0),
            "inflight": inflight,
            "image": record.image,
            "started_at": record.started_at,
            "seq": record.seq,
            "log": str(self._paths.release_log(record.version)),
            "replicas": replicas,
            "release_dir": record.release_dir or None,
            "tree_digest": record.tree_digest or None,
            "gated": [list(triple) for triple in record.gated],
            "not_restarted": self._refused.get(record.version),
        }
