"""A real Prometheus-compatible query API on 127.0.0.1: `GET /api/v1/query?query=...`.

It keeps a small series store and answers instant queries made of one selector,
`name` or `name{label="value",...}`, with Prometheus's own JSON shapes: a `vector` result
(empty when nothing matches), and `400 {"status": "error", "errorType": "bad_data"}` for
anything it cannot parse. `answers` pins a raw JSON reply per query (scalars, matrices, errors),
and `delay` makes every answer slow.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_SELECTOR = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*$")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)"\s*')


class _Server(ThreadingHTTPServer):
    # http.server's default backlog of 5 drops simultaneous connections into SYN retransmits (1 s).
    request_queue_size = 128
    daemon_threads = True


class PrometheusPeer:
    def __init__(self) -> None:
        self.series: list[tuple[str, dict[str, str], float]] = []
        self.answers: dict[str, tuple[int, Any]] = {}
        self.delay = 0.0
        self.queries: list[str] = []
        self._lock = threading.Lock()
        peer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/api/v1/query":
                    self._send(404, {"status": "error", "errorType": "not_found", "error": parts.path})
                    return
                query = (parse_qs(parts.query).get("query") or [""])[0]
                with peer._lock:
                    peer.queries.append(query)
                    delay = peer.delay
                if delay:
                    time.sleep(delay)
                self._send(*peer.evaluate(query))

            def _send(self, status: int, body: Any) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def set(self, name: str, value: float, **labels: str) -> None:
        """Add or replace one series."""
        with self._lock:
            self.series = [s for s in self.series if not (s[0] == name and s[1] == labels)]
            self.series.append((name, labels, value))

    def evaluate(self, query: str) -> tuple[int, Any]:
        with self._lock:
            if query in self.answers:
                return self.answers[query]
            series = list(self.series)
        match = _SELECTOR.match(query)
        if not match:
            return 400, {"status": "error", "errorType": "bad_data", "error": f"parse error: {query!r}"}
        name, matchers = match.group(1), match.group(2) or ""
        wanted = dict(_MATCHER.findall(matchers))
        now = time.time()
        result: list[dict[str, Any]] = [
            {"metric": {"__name__": n} | labels, "value": [now, repr(float(value))]}
            for n, labels, value in series
            if n == name and all(labels.get(k) == v for k, v in wanted.items())
        ]
        return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
