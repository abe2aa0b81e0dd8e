"""Real peers for the deploy gates: the pipeline store in PostgreSQL, an HTTP verdict service, a silent server.

`seed_passed(dsn, run_id, digests)` writes what the ValidationAgent and the ComplianceValidator
would for a deploy of exactly `digests`; pipeline tests reuse it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from orchestrator.artifacts import ArtifactDigests
from orchestrator.store import ComplianceVerdict, ValidationRun, create_store_tables, seed_verdicts
from tests.peers.http import HttpPeer, Reply, Seen

__all__ = ["SilentServer", "VerdictService", "create_store_tables", "seed_passed", "silent_server"]


def seed_passed(dsn: str, run_id: str, digests: ArtifactDigests, **overrides: Any) -> str | None:
    """A passed validation run and a compliant verdict for `digests` (keyword overrides as in seed_verdicts)."""
    return seed_verdicts(dsn, run_id, digests, **overrides)


class VerdictService:
    """An HTTP verdict service over a real HttpPeer, serving rows as `orchestrator.store` defines them."""

    def __init__(self, peer: HttpPeer, token: str | None = None) -> None:
        self.peer = peer
        self.url = peer.url
        self.token = token

    def _guarded(self, body: Any) -> Any:
        def handler(seen: Seen) -> Reply:
            if self.token and seen.headers.get("authorization") != f"Bearer {self.token}":
                return Reply(401, {"error": "unauthorized"})
            return Reply(200, body)

        return handler

    def add_run(self, run: ValidationRun) -> None:
        self.peer.route("GET", f"/validation-runs/{quote(run.id, safe='')}", self._guarded(run.to_dict()))

    def set_verdicts(self, run_id: str, verdicts: list[ComplianceVerdict]) -> None:
        rows = [v.to_dict() for v in verdicts]
        self.peer.route("GET", f"/compliance-verdicts/{quote(run_id, safe='')}", self._guarded(rows))

    def add_passed(self, run_id: str, digests: ArtifactDigests, *, verdict: str = "compliant") -> None:
        now = datetime.now(UTC)
        self.add_run(ValidationRun(run_id, "passed", "agent_005", now, now, digests))
        self.set_verdicts(run_id, [ComplianceVerdict(f"v-{run_id}", run_id, "agent_002", verdict, digests, now)])


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self.accepted:
            conn.close()
        self._sock.close()


@contextmanager
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()
