"""A real HTTP server on 127.0.0.1 in a thread, with programmable routes and fault switches.

Tests describe behaviour as plain functions; the server records every request it saw.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    close: bool = False
    """Drop the connection without answering (a reset as the client sees it)."""


Handler = Callable[[Seen], Reply]


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 turns a burst of concurrent checks into SYN retransmits (~1 s each).
    request_queue_size = 128


class HttpPeer:
    """`peer.route("GET", "/health", lambda req: Reply(200, {"ok": True}))`; `peer.url`."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.seen: list[Seen] = []
        self.faults: list[Reply] = []
        """Replies served, first in first out, before any route: inject 429s, 500s, resets."""
        self._lock = threading.Lock()
        peer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; without this the body waits for a delayed ACK (~40 ms).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with peer._lock:
                    peer.seen.append(seen)
                    fault = peer.faults.pop(0) if peer.faults else None
                    handler = peer.routes.get((self.command, path)) or peer.routes.get(("*", path))
                reply = fault or (handler(seen) if handler else Reply(404, {"error": "no route"}))
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.close:
                    self.close_connection = True
                    return
                payload = reply.body
                content_type = "text/plain"
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode()
                    content_type = "application/json"
                elif isinstance(payload, str):
                    payload = payload.encode()
                self.send_response(reply.status)
                headers = {"Content-Type": content_type, **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        # A short poll interval keeps close() from costing half a second in every test.
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def route(self, method: str, path: str, handler: Handler | Reply) -> None:
        with self._lock:
            self.routes[(method, path)] = handler if callable(handler) else (lambda _req, r=handler: r)

    def requests_to(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path.split("?", 1)[0] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
