"""Real peers for the deploy gates: the pipeline store in PostgreSQL, an HTTP verdict service, a silent server.

`seed_passed(dsn, run_id, digests)` writes what the SQLAgent, the ValidationAgent and the
ComplianceValidator would for a deploy of exactly `digests`; pipeline tests reuse it.
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
from orchestrator.sqlagent import SQLAGENT_ID, SqlAgentRecord, required_records
from orchestrator.store import ComplianceVerdict, ValidationRun
from orchestrator.store_seed import create_store_tables, seed_sqlagent_records, seed_verdicts
from tests.peers.http import HttpPeer, Reply, Seen

__all__ = [
    "SilentServer",
    "VerdictService",
    "create_store_tables",
    "seed_passed",
    "seed_sqlagent_records",
    "silent_server",
    "sqlagent_records_for",
]


def seed_passed(dsn: str, run_id: str, digests: ArtifactDigests, **overrides: Any) -> str | None:
    """The SQLAgent's records of the migrations (run `sqlagent-<run_id>`), a passed validation run and a
    compliant verdict for `digests` (keyword overrides as in seed_verdicts)."""
    seed_sqlagent_records(dsn, digests, sqlagent_run_id=f"sqlagent-{run_id}")
    return seed_verdicts(dsn, run_id, digests, **overrides)


def sqlagent_records_for(
    digests: ArtifactDigests, sqlagent_run_id: str, *, agent_id: str = SQLAGENT_ID, recorded_at: datetime | None = None
) -> list[SqlAgentRecord]:
    """The records the SQLAgent would write for the `V` files of `digests` (for the HTTP service)."""
    at = recorded_at or datetime.now(UTC)
    return [
        SqlAgentRecord(
            id=f"{sqlagent_run_id}/{r.filename}",
            sqlagent_run_id=sqlagent_run_id,
            agent_id=agent_id,
            filename=r.filename,
            version=r.version,
            sha256=r.sha256,
            undo_filename=r.undo_filename,
            undo_sha256=r.undo_sha256,
            recorded_at=at,
        )
        for r in required_records(digests)
    ]


class VerdictService:
    """An HTTP verdict service over a real HttpPeer, serving rows as `orchestrator.store` defines them."""

    def __init__(self, peer: HttpPeer, token: str | None = None) -> None:
        self.peer = peer
        self.url = peer.url
        self.token = token
        self.records: list[SqlAgentRecord] = []

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

    def add_sqlagent_records(self, records: list[SqlAgentRecord]) -> None:
        """Serve `records` (with those added before) by file name and by SQLAgent run."""
        self.records += records
        names = {name for r in self.records for name in r.files()}
        for name in names:
            rows = [r.to_dict() for r in self.records if name in r.files()]
            self.peer.route("GET", f"/sqlagent-migrations/{quote(name, safe='')}", self._guarded(rows))
        for run in {r.sqlagent_run_id for r in self.records}:
            rows = [r.to_dict() for r in self.records if r.sqlagent_run_id == run]
            self.peer.route("GET", f"/sqlagent-runs/{quote(run, safe='')}/migrations", self._guarded(rows))

    def add_passed(self, run_id: str, digests: ArtifactDigests, *, verdict: str = "compliant") -> None:
        now = datetime.now(UTC)
        self.add_sqlagent_records(sqlagent_records_for(digests, f"sqlagent-{run_id}", recorded_at=now))
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
