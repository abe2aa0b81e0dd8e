"""A real HTTP app on 127.0.0.1 that takes a fixed time to answer every request.

It stands in for a release under verification in the concurrency tests and in
`bench/verify.py`: `/health`, `/endpoint/<n>` (text), `/job/<n>` (JSON `age_seconds`),
`/metrics` (Prometheus text) and `/api/v1/query` (a Prometheus query answer), each after
`delay` seconds. Its listen backlog is large, unlike `http.server`'s default of 5, so twenty
simultaneous connections are accepted at once instead of waiting on SYN retransmits.

With `together=n` it answers nothing until n requests are in flight at once (a barrier), so a
test proves its requests were concurrent by their passing, not by how long they took.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True


class SlowApp:
    def __init__(self, delay: float, *, together: int | None = None, together_timeout: float = 30.0) -> None:
        self.delay = delay
        self.requests = 0
        self._lock = threading.Lock()
        self._together = None if together is None else threading.Barrier(together, timeout=together_timeout)
        app = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with app._lock:
                    app.requests += 1
                if app._together is not None:
                    try:
                        app._together.wait()
                    except threading.BrokenBarrierError:
                        self.send_error(503, "the other requests never came: they were not sent at once")
                        return
                time.sleep(app.delay)
                path = self.path.split("?", 1)[0]
                if path.startswith("/job/"):
                    body, kind = json.dumps({"age_seconds": 5}), "application/json"
                elif path == "/metrics":
                    body, kind = "# TYPE app_up gauge\napp_up 1\n", "text/plain; version=0.0.4"
                elif path == "/api/v1/query":
                    result = [{"metric": {"__name__": "up"}, "value": [time.time(), "1"]}]
                    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})
                    kind = "application/json"
                else:
                    body, kind = "ok", "text/plain"
                payload = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._together is not None:
            self._together.abort()
        self.server.shutdown()
        self.server.server_close()
