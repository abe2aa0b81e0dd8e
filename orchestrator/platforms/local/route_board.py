"""The routing the proxy process applies, in memory it shares with the supervisor.

A route call writes the new weights (and sticky rule) here; the data plane looks at the board's
generation before it picks the release of each request and takes a new routing itself. So a switch
needs no message to the proxy process: under load, its control thread waits for the interpreter lock
behind the data plane's and for a CPU behind everything else, milliseconds that no longer delay a switch.
Changes of backends (which releases exist, on which ports) still go through the control socket (`sync`).

The board is one anonymous shared-memory file (memfd) created by the supervisor and inherited by the
proxy process; a supervisor that adopts a running proxy process receives it from that process
(`route_board` operation), so the board outlives either. Layout: generation (8 bytes, odd while being
written), payload length (4), CRC-32 of the payload (4), payload (JSON `{"weights", "sticky"}`). The
supervisor is the only writer; a reader takes a payload only when the generation was even and the same
before and after its read and the checksum matches (a read torn by a concurrent write fails one of
them), and otherwise keeps its table and looks again at the next request.
"""

from __future__ import annotations

import json
import mmap
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["BoardRouting", "RouteBoard"]

_SIZE = 64 * 1024
"""Weights name at most 100 releases (each at least 1%), labels at most 128 characters: ~15 KB."""
_HEAD = 16


@dataclass(frozen=True, slots=True)
class BoardRouting:
    generation: bytes
    weights: dict[str, int]
    sticky: dict[str, str | None] | None


class RouteBoard:
    """One mapping of the board; `fd` stays open (it is what a child process inherits)."""

    __slots__ = ("_map", "fd")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._map = mmap.mmap(fd, _SIZE)

    @classmethod
    def create(cls) -> RouteBoard:
        """A new board with no routing yet (generation 0). Raises OSError."""
        fd = os.memfd_create("deploy-orchestrator-routing")  # close-on-exec: passed on on purpose only
        try:
            os.ftruncate(fd, _SIZE)
            return cls(fd)
        except BaseException:
            os.close(fd)
            raise

    def generation(self) -> bytes:
        """The current generation's bytes (the data plane compares them before each pick)."""
        return self._map[:8]

    def write(self, weights: Mapping[str, int], sticky: Mapping[str, str | None] | None) -> None:
        """Publish a routing. Raises ValueError if it does not fit (it always does: see `_SIZE`)."""
        payload = json.dumps({"weights": dict(weights), "sticky": dict(sticky) if sticky else None}).encode()
        if _HEAD + len(payload) > _SIZE:
            raise ValueError(f"a routing of {len(payload)} bytes does not fit the routing board")
        current = int.from_bytes(self._map[:8], "little")
        odd = current + 1 if current % 2 == 0 else current
        self._map[:8] = odd.to_bytes(8, "little")
        self._map[8:_HEAD] = len(payload).to_bytes(4, "little") + zlib.crc32(payload).to_bytes(4, "little")
        self._map[_HEAD : _HEAD + len(payload)] = payload
        self._map[:8] = (odd + 1).to_bytes(8, "little")

    def read(self) -> BoardRouting | None:
        """The routing published last; None while it is being written or before the first."""
        before = self._map[:8]
        if before[0] % 2 or before == bytes(8):
            return None
        size = int.from_bytes(self._map[8:12], "little")
        checksum = int.from_bytes(self._map[12:_HEAD], "little")
        payload = self._map[_HEAD : _HEAD + min(size, _SIZE - _HEAD)]
        if self._map[:8] != before or zlib.crc32(payload) != checksum:
            return None
        doc = json.loads(payload)
        return BoardRouting(before, {str(k): int(v) for k, v in doc["weights"].items()}, doc.get("sticky"))

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)
