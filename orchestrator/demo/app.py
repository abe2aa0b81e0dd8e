"""The example application: a tiny HTTP/1.1 keep-alive server that says which version it is.

    python -m orchestrator.demo.app --port 8001 --version v2 [--unhealthy]

Routes: `/` (text with the version), `/version` (`{"version": V}`), `/whoami` (`{"version": V,
"port": P, "pid": N}`: which process answered, to tell replicas apart), `/health` (200
`{"status": "ok", "version": V}`, or 503 when started with `--unhealthy` or `DEMO_UNHEALTHY=1`),
`/slow?ms=N` (answers after N ms: a request in flight during a switch), `/stream?chunks=N`
(a chunked body), `/work` (a request of the app's real work: with `DEMO_WORK` set to JSON such as
`{"v2": {"delay_ms": 10, "error_pct": 5}}`, release v2 takes 10 ms and answers every 20th request
500, so a canary can be made slow or failing while its health stays green; `cold_delay_ms` makes
a process's first `cold_requests` requests, or those in the first `cold_seconds` after its first
one, that much slower, as a cold process's are), and `POST /echo` (the
request body back). Every answer carries `X-Release-Version`. Standard library only, so it starts
in a blink and the benchmarks can drive it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["main", "make_server", "release_command"]

_MAX_SLOW_MS = 60_000
_MAX_CHUNKS = 10_000


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    version_label = ""
    healthy = True
    work_delay = 0.0
    fail_every = 0
    served = 0
    cold_requests = 0
    cold_seconds = 0.0
    cold_delay = 0.0
    first_work: float | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "deploy-orchestrator-demo"
    # Small answers on keep-alive connections: without this, Nagle + delayed ACK add ~40 ms each.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        # Access logs would dominate the cost of each request and fill the release log.
        pass

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if urlsplit(self.path).path == "/echo":
            self._send(200, body, "application/octet-stream")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _dispatch(self, *, head: bool) -> None:
        parts = urlsplit(self.path)
        version = self.server.version_label
        query = parse_qs(parts.query)
        if parts.path == "/":
            self._send(200, f"Hello from deploy-orchestrator demo, version {version}\n".encode(), "text/plain", head)
        elif parts.path == "/version":
            self._send_json(200, {"version": version}, head)
        elif parts.path == "/whoami":
            self._send_json(200, {"version": version, "port": self.server.server_address[1], "pid": os.getpid()}, head)
        elif parts.path == "/health":
            if self.server.healthy:
                self._send_json(200, {"status": "ok", "version": version}, head)
            else:
                self._send_json(503, {"status": "unhealthy", "version": version}, head)
        elif parts.path == "/slow":
            time.sleep(min(int(query.get("ms", ["100"])[0]), _MAX_SLOW_MS) / 1000)
            self._send_json(200, {"version": version, "slow": True}, head)
        elif parts.path == "/work":
            self._work(version, head)
        elif parts.path == "/stream":
            self._send_chunked(min(int(query.get("chunks", ["3"])[0]), _MAX_CHUNKS), head)
        else:
            self._send(404, b"not found\n", "text/plain", head)

    def _work(self, version: str, head: bool) -> None:
        server = self.server
        server.served += 1  # one counter shared by the handler threads: a count a moment off is fine
        if server.first_work is None:
            server.first_work = time.monotonic()
        warm = server.served > server.cold_requests and time.monotonic() - server.first_work >= server.cold_seconds
        cold = 0.0 if warm else server.cold_delay
        if server.work_delay or cold:
            time.sleep(server.work_delay + cold)
        failing = server.fail_every and server.served % server.fail_every == 0
        self._send_json(500 if failing else 200, {"version": version, "ok": not failing}, head)

    def _send_json(self, status: int, doc: dict[str, Any], head: bool = False) -> None:
        self._send(status, json.dumps(doc).encode() + b"\n", "application/json", head)

    def _send(self, status: int, body: bytes, content_type: str, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Release-Version", self.server.version_label)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_chunked(self, chunks: int, head: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Release-Version", self.server.version_label)
        self.end_headers()
        if head:
            return
        for i in range(chunks):
            data = f"chunk {i} from {self.server.version_label}\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


def release_command(python: str = sys.executable) -> list[str]:
    """The `local.command` that runs this app as a release: the platform fills in `{port}` and `{version}`."""
    return [python, "-m", "orchestrator.demo.app", "--port", "{port}", "--version", "{version}"]


def make_server(port: int, version: str, *, healthy: bool = True, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A bound server (call `serve_forever()`); port 0 picks a free one."""
    server = _Server((host, port), _Handler)
    server.version_label = version
    server.healthy = healthy
    work = json.loads(os.environ.get("DEMO_WORK") or "{}").get(version) or {}
    server.work_delay = float(work.get("delay_ms", 0)) / 1000
    server.cold_requests = int(work.get("cold_requests", 0))
    server.cold_seconds = float(work.get("cold_seconds", 0))
    server.cold_delay = float(work.get("cold_delay_ms", 0)) / 1000
    error_pct = float(work.get("error_pct", 0))
    server.fail_every = round(100 / error_pct) if error_pct > 0 else 0
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="deploy-orchestrator demo application")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--unhealthy", action="store_true", help="answer /health with 503")
    args = parser.parse_args(argv)
    healthy = not (args.unhealthy or os.environ.get("DEMO_UNHEALTHY") == "1")
    server = make_server(args.port, args.version, healthy=healthy, host=args.host)
    print(f"demo {args.version} listening on {args.host}:{server.server_address[1]}", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
