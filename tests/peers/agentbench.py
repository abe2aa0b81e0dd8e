"""A real agentbench stand-in on 127.0.0.1: `POST /api/dpo-pairs` stores pairs, deduplicated by Idempotency-Key.

It counts what matters to exactly-once delivery: every POST received, the distinct pairs stored,
and the duplicates (a key received again after it was stored). Fault switches:
- `faults`: replies served first in, first out, before the normal handling: a status (500, 429
  with Retry-After, 400...), a delay (slow), a dropped connection, and whether the pair is
  stored anyway (the ambiguous failure: stored, but the client saw an error);
- `down()` / `up()`: the port closed (connection refused) and reopened on the same port.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fault:
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    close: bool = False
    """Drop the connection without answering."""
    store: bool = False
    """Store the pair even though the reply is a failure (or the client gave up waiting)."""


@dataclass
class Received:
    key: str | None
    headers: dict[str, str]
    body: bytes


@dataclass
class _State:
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    submissions: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    duplicates: int = 0


class AgentbenchPeer:
    """`peer.url`; `peer.stored` (key -> pair, in arrival order); `peer.duplicates`; `peer.faults`."""

    def __init__(self, token: str = "agentbench-token-canary-7c1d", *, keep_bodies: bool = True) -> None:
        self.token = token
        self.faults: list[Fault | None] = []
        """Consumed one per request; None lets that request through untouched."""
        self.keep_bodies = keep_bodies
        self._state = _State()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.up()
        self.url = f"http://127.0.0.1:{self.port}"

    # --- what the tests read ------------------------------------------------------------------

    @property
    def stored(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._state.stored)

    @property
    def duplicates(self) -> int:
        with self._lock:
            return self._state.duplicates

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._state.received)

    def submission_of(self, key: str) -> str | None:
        with self._lock:
            return self._state.submissions.get(key)

    # --- switches -----------------------------------------------------------------------------

    def down(self) -> None:
        """Close the listening port: clients get connection refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def up(self) -> None:
        if self._server is not None:
            return
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.down()

    def __enter__(self) -> AgentbenchPeer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- the server ---------------------------------------------------------------------------

    def _accept(self, key: str, body: dict[str, Any]) -> str:
        """Store (or recognise) a pair; returns its submission id. Caller holds the lock."""
        state = self._state
        if key in state.stored:
            state.duplicates += 1
            return state.submissions[key]
        state.stored[key] = body
        state.submissions[key] = f"sub-{len(state.stored):06d}"
        return state.submissions[key]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; without TCP_NODELAY the second waits for the
            # client's delayed ACK (~40 ms a request on Linux loopback).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                key = self.headers.get("Idempotency-Key")
                with peer._lock:
                    peer._state.received.append(
                        Received(key, {k.lower(): v for k, v in self.headers.items()}, raw if peer.keep_bodies else b"")
                    )
                    fault = peer.faults.pop(0) if peer.faults else None
                if self.path != "/api/dpo-pairs":
                    self._reply(404, {"error": "not found"})
                    return
                if self.headers.get("Authorization") != f"Bearer {peer.token}":
                    self._reply(401, {"error": "bad token"})
                    return
                if not key:
                    self._reply(400, {"error": "Idempotency-Key required"})
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._reply(400, {"error": "body is not JSON"})
                    return
                if fault is not None:
                    if fault.delay:
                        time.sleep(fault.delay)
                    if fault.store:
                        with peer._lock:
                            peer._accept(key, body)
                    if fault.close:
                        self.close_connection = True
                        return
                    headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                    if fault.status >= 300:
                        self._reply(fault.status, {"error": "injected fault"}, headers)
                        return
                required = ("agent_name", "failure_scenario", "preferred_output", "dispreferred_output")
                if not isinstance(body, dict) or any(k not in body for k in required):
                    self._reply(422, {"error": "not a preference pair"})
                    return
                with peer._lock:
                    submission = peer._accept(key, body)
                self._reply(201, {"submission_id": submission})

        return Handler
