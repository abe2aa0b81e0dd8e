"""A local `kubectl proxy`, narrowed to one namespace's service proxies.

Health checks and verification are plain HTTP requests: they carry no cluster credentials and
trust only public CAs, while the API server's service proxy
(`/api/v1/namespaces/{ns}/services/{svc}:{port}/proxy/...`) needs both. So, like `kubectl proxy`,
this listens on 127.0.0.1 and forwards each request to the API server with the client's own TLS
settings and token. Unlike `kubectl proxy` it forwards nothing but service-proxy paths of our
namespace (anything else is 403), so another local process cannot use it to reach the rest of the
API with our token. It lives as long as the adapter (a daemon thread).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import urllib3

from orchestrator.redaction import redact

__all__ = ["ServiceProxy"]

# Hop-by-hop headers (RFC 9110 7.6.1) and the ones we set ourselves.
_DROPPED = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}
    | {"authorization", "content-length"}
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class ServiceProxy:
    """`url` + `proxy_path(...)` reaches a Service's pods through the API server, authenticated."""

    def __init__(self, api_client: Any, namespace: str, *, timeout_seconds: float = 30.0) -> None:
        self._client = api_client
        self._prefix = f"/api/v1/namespaces/{namespace}/services/"
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        """Starts the listener on first use (plan mode never opens a port)."""
        with self._lock:
            if self._server is None:
                self._server = _Server(("127.0.0.1", 0), self._handler())
                threading.Thread(
                    target=self._server.serve_forever, args=(0.1,), name="k8s-service-proxy", daemon=True
                ).start()
            return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._server = None

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> tuple[int, Any, bytes]:
        configuration = self._client.configuration
        outgoing = {k: v for k, v in headers.items() if k.lower() not in _DROPPED}
        # auth_settings() runs the kubeconfig's refresh hook, so expiring tokens stay current.
        for setting in configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                outgoing[setting["key"]] = setting["value"]
        response = self._client.rest_client.pool_manager.request(
            method,
            str(configuration.host).rstrip("/") + path,
            body=body,
            headers=outgoing,
            timeout=urllib3.Timeout(total=self._timeout),
            retries=False,
            redirect=False,
            preload_content=True,
        )
        return response.status, response.headers, response.data

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._relay()

            def do_HEAD(self) -> None:
                self._relay()

            def do_POST(self) -> None:
                self._relay()

            def do_PUT(self) -> None:
                self._relay()

            def do_DELETE(self) -> None:
                self._relay()

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                service_path = self.path.split("?", 1)[0]
                if not service_path.startswith(proxy._prefix) or "/proxy" not in service_path:
                    self._answer(403, {}, b"only this namespace's service proxy paths are forwarded\n")
                    return
                try:
                    status, headers, data = proxy._forward(self.command, self.path, dict(self.headers.items()), body)
                except urllib3.exceptions.HTTPError as exc:
                    self._answer(502, {}, f"API server unreachable: {redact(str(exc))}\n".encode())
                    return
                self._answer(status, headers, data)

            def _answer(self, status: int, headers: Any, data: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in _DROPPED:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

        return Handler
