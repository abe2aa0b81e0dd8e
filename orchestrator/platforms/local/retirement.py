"""Taking releases out of service: stop one, retire the idle ones beyond `keep`, remember their digests.

A release is stopped only once no traffic is routed to it: its requests in flight finish first (at most
the drain time), the data plane forgets it, its processes are stopped and its snapshot deleted. A retired
release's digests are remembered, so that its files can come back (a rollback) only if they match.
This is the retirement half of the supervisor (which owns the state and the other control operations).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from orchestrator.platforms.local.channel import OperationError
from orchestrator.platforms.local.keeper import ReplicaKeeper
from orchestrator.platforms.local.process import terminate_all
from orchestrator.platforms.local.snapshot import remove
from orchestrator.platforms.local.state import ReleaseRecord, RetiredRelease, check_version

__all__ = ["Retirement"]

log = logging.getLogger(__name__)

_Result = dict[str, Any]


class Retirement(ReplicaKeeper):
    _published: dict[str, tuple[int, ...]]
    _retired: tuple[RetiredRelease, ...]

    def _take_drain_seconds(self, request: dict[str, Any]) -> None:
        """Requests carry local.drain_seconds as configured now: it also bounds the drain on SIGTERM."""
        if "drain_seconds" in request:
            self._link.drain_seconds = float(request["drain_seconds"])

    async def _op_retire(self, request: dict[str, Any]) -> list[str]:
        self._take_drain_seconds(request)
        keep, drain = int(request["keep"]), float(request["drain_seconds"])
        idle = [r for r in self._releases.values() if self._weights.get(r.version, 0) == 0]
        idle.sort(key=lambda r: r.seq, reverse=True)
        victims = [r.version for r in idle[max(keep, 0) :]]
        stopped = await asyncio.gather(*(self._stop_release(v, drain) for v in victims))
        await asyncio.to_thread(self._prune_snapshots)
        return [v for v, done in zip(victims, stopped, strict=True) if done]

    def _prune_snapshots(self) -> None:
        """Delete snapshots no release runs from (left by a run that crashed between capture and start).

        Called on retire, at the end of a deploy, when no capture is under way (one deploy at a time).
        """
        if not self._paths.releases.is_dir():
            return
        kept = {Path(r.release_dir).name for r in self._releases.values() if r.release_dir}
        for entry in self._paths.releases.iterdir():
            if entry.name not in kept:
                log.info("removing %s: no release runs from it", entry)
                remove(entry)

    async def _op_stop(self, request: dict[str, Any]) -> _Result:
        version = check_version(str(request["version"]))
        if self._weights.get(version, 0):
            raise OperationError(
                f"release {version} still receives {self._weights[version]}% of traffic: route it away first"
            )
        return {"stopped": await self._stop_release(version, float(request["drain_seconds"]))}

    async def _stop_release(self, version: str, drain: float) -> bool:
        """Let in-flight requests finish (at most `drain` s), then stop the process. False if not stopped."""
        async with self._lock(version):
            record = self._releases.get(version)
            if record is None or self._weights.get(version, 0):
                return False
            self._stopping.add(version)
            try:
                if not await self._link.drain(version, drain):
                    log.warning("release %s: requests still open after %g s", version, drain)
                self._published.pop(version, None)
                await self._push()
                await terminate_all(record, self._popens.get(version, {}))
                self._remember(record)
                self._forget(version)
                if record.release_dir:
                    await asyncio.to_thread(remove, Path(record.release_dir))
            finally:
                self._stopping.discard(version)
            log.info("release %s stopped", version)
            return True

    def _remember(self, record: ReleaseRecord) -> None:
        """Keep a retired release's digests: its files may come back (a rollback) only if they match."""
        if record.tree_digest:
            gone = RetiredRelease(record.version, record.tree_digest, record.image, record.gated, time.time())
            self._retired = (gone, *(r for r in self._retired if r.version != record.version))

    def _forget(self, version: str) -> None:
        self._releases.pop(version, None)
        self._popens.pop(version, None)
        self._drop_restarts(version)
        self._save()

    def _drop_restarts(self, version: str) -> None:
        for key in [key for key in self._restart if key[0] == version]:
            del self._restart[key]
