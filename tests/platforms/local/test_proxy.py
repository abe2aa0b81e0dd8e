"""The per-request proxy against real upstreams on 127.0.0.1: demo apps and raw-socket servers."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.platforms.local.conftest import DemoRelease, ProxyHarness


def get_version(conn: http.client.HTTPConnection, path: str = "/version") -> str:
    conn.request("GET", path)
    response = conn.getresponse()
    assert response.status == 200, response.read()
    return str(json.loads(response.read())["version"])


def local_port(conn: http.client.HTTPConnection) -> int:
    assert conn.sock is not None
    return int(conn.sock.getsockname()[1])


def raw_exchange(port: int, request: bytes, *, read_until_close: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        if not read_until_close:
            return sock.recv(65536)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


class RawUpstream:
    """A TCP server whose per-connection behaviour is a plain function of the socket.

    `close` ends every thread it started: the acceptor and each connection's (cut under its function).
    """

    def __init__(self, serve: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.connections = 0
        self._serve = serve
        self._lock = threading.Lock()
        self._closing = False
        self._open: set[socket.socket] = set()
        self._workers: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name=f"raw-upstream-{self.port}", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            worker = threading.Thread(
                target=self._run, args=(sock,), name=f"raw-upstream-{self.port}-conn", daemon=True
            )
            with self._lock:
                self.connections += 1
                self._open.add(sock)
                self._workers.append(worker)
            worker.start()

    def _run(self, sock: socket.socket) -> None:
        try:
            self._serve(sock)
        except OSError:
            if not self._closing:
                raise
        finally:
            with self._lock:
                self._open.discard(sock)
            sock.close()

    def close(self) -> None:
        self._closing = True
        # Closing a listening socket does not wake a thread blocked in accept() on Linux; shutting it down does.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._acceptor.join(timeout=5)
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            workers = list(self._workers)
        for worker in workers:
            worker.join(timeout=5)


@pytest.fixture
def raw_upstream() -> Iterator[Callable[[Callable[[socket.socket], None]], RawUpstream]]:
    made: list[RawUpstream] = []

    def make(serve: Callable[[socket.socket], None]) -> RawUpstream:
        upstream = RawUpstream(serve)
        made.append(upstream)
        return upstream

    yield make
    for upstream in made:
        upstream.close()


def read_request(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    return data


def test_next_request_on_the_same_keepalive_connection_reaches_the_new_release(
    proxy: ProxyHarness, demo_release: Callable[[str], DemoRelease]
) -> None:
    v1, v2 = demo_release("v1"), demo_release("v2")
    proxy.add("v1", v1.port)
    proxy.add("v2", v2.port)
    proxy.route({"v1": 100})
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    assert [get_version(conn) for _ in range(3)] == ["v1"] * 3
    before = local_port(conn)

    proxy.route({"v2": 100})

    assert get_version(conn) == "v2"
    assert local_port(conn) == before, "the client connection must survive the switch"
    conn.close()


def test_request_in_flight_during_a_switch_finishes_on_the_old_release(
    proxy: ProxyHarness, demo_release: Callable[[str], DemoRelease]
) -> None:
    v1, v2 = demo_release("v1"), demo_release("v2")
    proxy.add("v1", v1.port)
    proxy.add("v2", v2.port)
    proxy.route({"v1": 100})
    slow: dict[str, str] = {}

    def slow_request() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        slow["version"] = get_version(conn, "/slow?ms=600")
        slow["next"] = get_version(conn)

    worker = threading.Thread(target=slow_request)
    worker.start()
    deadline = time.monotonic() + 3
    while proxy.call(lambda: proxy.proxy.backend("v1").inflight) == 0:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the slow request never reached v1"
        time.sleep(0.01)

    proxy.route({"v2": 100})
    assert get_version(http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)) == "v2"
    worker.join(timeout=5)

    assert slow == {"version": "v1", "next": "v2"}


def test_canary_weights_are_roughly_honoured_per_request(
    proxy: ProxyHarness, demo_release: Callable[[str], DemoRelease]
) -> None:
    v1, v2 = demo_release("v1"), demo_release("v2")
    proxy.add("v1", v1.port)
    proxy.add("v2", v2.port)
    proxy.route({"v1": 80, "v2": 20})
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    seen = [get_version(conn) for _ in range(400)]
    # Binomial(400, 0.2): mean 80, sd 8; 45..115 is beyond 4 sd either side.
    assert 45 <= seen.count("v2") <= 115
    assert seen.count("v1") + seen.count("v2") == 400


def test_chunked_upstream_body_is_relayed_and_the_connection_reused(
    proxy: ProxyHarness, demo_release: Callable[[str], DemoRelease]
) -> None:
    v1 = demo_release("v1")
    proxy.add("v1", v1.port)
    proxy.route({"v1": 100})
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    # A small chunked answer is held whole and re-framed; a large one is relayed in the proxy's chunks.
    for chunks, framing in ((50, "Content-Length"), (6000, "Transfer-Encoding")):
        conn.request("GET", f"/stream?chunks={chunks}")
        response = conn.getresponse()
        assert response.getheader(framing) is not None
        body = response.read().decode()
        assert body.splitlines() == [f"chunk {i} from v1" for i in range(chunks)]
    before = local_port(conn)
    assert get_version(conn) == "v1"
    assert local_port(conn) == before


def test_chunked_request_body_reaches_the_upstream_intact(
    proxy: ProxyHarness, raw_upstream: Callable[[Callable[[socket.socket], None]], RawUpstream]
) -> None:
    received: list[bytes] = []

    def serve(sock: socket.socket) -> None:
        data = read_request(sock)
        while not data.endswith(b"hello world"):
            data += sock.recv(65536)
        received.append(data)
        sock.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone")

    upstream = raw_upstream(serve)
    proxy.add("v1", upstream.port)
    proxy.route({"v1": 100})
    request = (
        b"POST /upload HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    )
    answer = raw_exchange(proxy.port, request)

    assert answer.startswith(b"HTTP/1.1 201 Created\r\n")
    assert answer.endswith(b"\r\n\r\ndone")
    assert b"Connection: close\r\n" in answer
    head, _, body = received[0].partition(b"\r\n\r\n")
    # Re-framed: the upstream gets the body whole with a length, never the client's chunks.
    assert b"Content-Length: 11" in head and b"Transfer-Encoding" not in head
    assert b"Connection" not in head, "hop-by-hop headers must not be forwarded"
    assert body == b"hello world"


def test_content_length_body_head_and_connection_close(
    proxy: ProxyHarness, demo_release: Callable[[str], DemoRelease]
) -> None:
    v1 = demo_release("v1")
    proxy.add("v1", v1.port)
    proxy.route({"v1": 100})
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    payload = bytes(range(256)) * 4000
    conn.request("POST", "/echo", body=payload)
    assert conn.getresponse().read() == payload
    conn.request("HEAD", "/")
    head = conn.getresponse()
    assert head.status == 200 and int(head.getheader("Content-Length") or 0) > 0
    assert head.read() == b""
    assert get_version(conn) == "v1", "a HEAD answer with Content-Length must not desynchronise the connection"

    answer = raw_exchange(proxy.port, b"GET /version HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")
    assert b"Connection: close\r\n" in answer
    assert answer.endswith(b'{"version": "v1"}\n')


def test_dead_reused_upstream_connection_is_retried_once_on_a_fresh_one(
    proxy: ProxyHarness, raw_upstream: Callable[[Callable[[socket.socket], None]], RawUpstream]
) -> None:
    def serve_one_then_drop(sock: socket.socket) -> None:
        # Answers one request as keep-alive, then drops the connection when the next one arrives,
        # as a release does when its idle timeout fires just as the proxy reuses the connection.
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        read_request(sock)

    upstream = raw_upstream(serve_one_then_drop)
    proxy.add("v1", upstream.port)
    proxy.route({"v1": 100})
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    statuses = []
    for _ in range(5):
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)

    assert statuses == [200] * 5
    assert upstream.connections == 5, "every reuse after the first request needed a fresh connection"


def test_upstream_that_is_down_gives_502_and_the_client_connection_survives(
    proxy: ProxyHarness, demo_release: Callable[[str], DemoRelease]
) -> None:
    closed_port = socket.create_server(("127.0.0.1", 0))
    dead_port = int(closed_port.getsockname()[1])
    closed_port.close()
    v2 = demo_release("v2")
    proxy.add("v1", dead_port)
    proxy.add("v2", v2.port)
    proxy.route({"v1": 100})
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 502
    assert b"release v1" in response.read()

    proxy.route({"v2": 100})
    assert get_version(conn) == "v2"


def test_large_upstream_answer_cut_short_closes_the_client_connection(
    proxy: ProxyHarness, raw_upstream: Callable[[Callable[[socket.socket], None]], RawUpstream]
) -> None:
    def cut(sock: socket.socket) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + b"x" * 70_000)

    upstream = raw_upstream(cut)
    proxy.add("v1", upstream.port)
    proxy.route({"v1": 100})
    # Too large to hold: the head is already on its way, so the client sees a short body and a close.
    answer = raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.partition(b"\r\n\r\n")[2] == b"x" * 70_000


def test_small_upstream_answer_cut_short_becomes_a_502(
    proxy: ProxyHarness, raw_upstream: Callable[[Callable[[socket.socket], None]], RawUpstream]
) -> None:
    def cut(sock: socket.socket) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")

    upstream = raw_upstream(cut)
    proxy.add("v1", upstream.port)
    proxy.route({"v1": 100})
    answer = raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"release v1 cut its answer" in answer


def test_without_a_route_the_proxy_answers_503(proxy: ProxyHarness) -> None:
    answer = raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", b"400"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", b"501"),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", b"505"),
        (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", b"400"),
    ],
    ids=["te-and-cl", "two-lengths", "not-chunked", "http2", "space-before-colon"],
)
def test_ambiguous_or_malformed_requests_are_refused(
    proxy: ProxyHarness, demo_release: Callable[[str], DemoRelease], request_bytes: bytes, status: bytes
) -> None:
    v1 = demo_release("v1")
    proxy.add("v1", v1.port)
    proxy.route({"v1": 100})
    answer = raw_exchange(proxy.port, request_bytes)
    assert answer.split(b" ", 2)[1] == status
    assert b"Connection: close\r\n" in answer
