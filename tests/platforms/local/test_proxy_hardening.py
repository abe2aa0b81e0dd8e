"""Regression tests for the proxy's framing, interim answers, resending and timeouts, on real loopback sockets.

Each test names the defect it guards: request smuggling through `Connection:` tokens, 1xx answers
taken for the final one, lenient framing, non-idempotent resends, and endless waits after a head.
"""

from __future__ import annotations

import dataclasses
import http.client
import re
import socket
import threading
import time
from collections.abc import Callable

import pytest

from orchestrator.platforms.local import upstream as upstream_module
from tests.platforms.local.conftest import DemoRelease, ProxyHarness
from tests.platforms.local.test_proxy import RawUpstream, raw_exchange, raw_upstream, read_request
from tests.platforms.local.test_proxy_replicas import add_replicas, dead_port

__all__ = ["raw_upstream"]  # the fixture, imported so pytest finds it here

RawFactory = Callable[[Callable[[socket.socket], None]], RawUpstream]


class Recorder:
    """An upstream that records every byte it receives and answers each request head with `answer`."""

    def __init__(self, make: RawFactory, answer: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") -> None:
        self.received: list[bytes] = []
        self.lock = threading.Lock()
        self.answer = answer
        self.upstream = make(self.serve)
        self.port = self.upstream.port

    def serve(self, sock: socket.socket) -> None:
        sock.settimeout(2)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
                with self.lock:
                    self.received.append(chunk)
                if b"\r\n\r\n" in data:
                    data = b""
                    sock.sendall(self.answer)
        except OSError:
            pass

    def text(self) -> bytes:
        with self.lock:
            return b"".join(self.received)


def route_to(proxy: ProxyHarness, port: int) -> None:
    proxy.add("v1", port)
    proxy.route({"v1": 100})


def status_of(answer: bytes) -> bytes:
    return answer.split(b" ", 2)[1] if answer else b""


def inflight(proxy: ProxyHarness) -> int:
    def read() -> int:
        backend = proxy.proxy.backend("v1")
        assert backend is not None
        return backend.inflight

    return proxy.call(read)


def wait_closed(sock: socket.socket, limit: float = 5.0) -> float:
    """Read until the peer closes; return how long it took."""
    start = time.monotonic()
    sock.settimeout(limit)
    while sock.recv(65536):
        pass
    return time.monotonic() - start


# --- 1. Connection tokens must not remove the framing the proxy used ------------------------------


@pytest.mark.parametrize("token", [b"content-length", b"Transfer-Encoding", b"host", b"close, Content-Length"])
def test_connection_header_naming_a_framing_header_is_refused(
    proxy: ProxyHarness, raw_upstream: RawFactory, token: bytes
) -> None:
    recorder = Recorder(raw_upstream)
    route_to(proxy, recorder.port)
    smuggled = b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"
    if token.lower() == b"transfer-encoding":
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
        framing = b"Transfer-Encoding: chunked\r\n"
    else:
        body, framing = smuggled, b"Content-Length: %d\r\n" % len(smuggled)
    request = b"POST / HTTP/1.1\r\nHost: a\r\n" + framing + b"Connection: " + token + b"\r\n\r\n" + body

    answer = raw_exchange(proxy.port, request)

    assert status_of(answer) == b"400"
    assert b"Connection: close\r\n" in answer
    assert recorder.text() == b"", "nothing reaches the upstream"


@pytest.mark.parametrize(
    "lengths",
    [b"Content-Length: 5, 5\r\nContent-Length: 5\r\n", b"Content-Length: 5\r\nContent-Length: 5\r\n"],
    ids=["list", "repeated"],
)
def test_a_repeated_content_length_is_refused_even_when_the_values_agree(
    proxy: ProxyHarness, raw_upstream: RawFactory, lengths: bytes
) -> None:
    # llhttp, like nginx, takes no chances: the framing has exactly one spelling or the request is refused.
    recorder = Recorder(raw_upstream)
    route_to(proxy, recorder.port)
    answer = raw_exchange(proxy.port, b"POST / HTTP/1.1\r\nHost: a\r\n" + lengths + b"Connection: close\r\n\r\nhello")
    assert status_of(answer) == b"400"
    assert recorder.text() == b"", "nothing reaches the upstream"


def test_the_upstream_gets_exactly_the_framing_the_proxy_used(proxy: ProxyHarness, raw_upstream: RawFactory) -> None:
    recorder = Recorder(raw_upstream)
    route_to(proxy, recorder.port)
    request = b"POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\nConnection: close\r\n\r\nhello"

    answer = raw_exchange(proxy.port, request)

    assert status_of(answer) == b"200"
    sent = recorder.text()
    assert sent.lower().count(b"content-length") == 1
    assert b"\r\nContent-Length: 5\r\n" in sent
    assert sent.endswith(b"\r\n\r\nhello")


def test_a_chunked_request_is_re_framed_with_a_length(proxy: ProxyHarness, raw_upstream: RawFactory) -> None:
    recorder = Recorder(raw_upstream)
    route_to(proxy, recorder.port)
    request = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"
    )

    answer = raw_exchange(proxy.port, request)

    assert status_of(answer) == b"200"
    sent = recorder.text()
    assert b"\r\nContent-Length: 5\r\n" in sent
    assert b"Transfer-Encoding" not in sent and b"X-Trailer" not in sent
    assert sent.endswith(b"\r\n\r\nhello")


def test_a_chunked_request_too_long_to_hold_is_streamed_in_the_proxys_chunks(
    proxy: ProxyHarness, raw_upstream: RawFactory
) -> None:
    received: list[bytes] = []

    def serve(sock: socket.socket) -> None:
        data = b""
        while not data.endswith(b"\r\n0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        received.append(data)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    upstream = raw_upstream(serve)
    route_to(proxy, upstream.port)
    payload = b"x" * (3 << 20)
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (payload[:1000], payload[1000:])) + b"0\r\n\r\n"
    request = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body

    answer = raw_exchange(proxy.port, request)

    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    head, _, sent = received[0].partition(b"\r\n\r\n")
    # The upstream connection carries nothing after this request: it is closed, never pooled.
    assert b"Transfer-Encoding: chunked" in head and b"Connection: close" in head
    decoded, rest = b"", sent
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        decoded, rest = decoded + rest[:size], rest[size + 2 :]
    assert decoded == payload
    assert upstream.connections == 1


# --- 2. Interim answers, and connections parked with bytes unread --------------------------------


def _answers_after_interim(interim: bytes) -> Callable[[socket.socket], None]:
    def serve(sock: socket.socket) -> None:
        for n in range(3):
            if not read_request(sock):
                return
            body = b"answer-%d" % n
            sock.sendall(interim + b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    return serve


@pytest.mark.parametrize(
    "interim",
    [b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n", b"HTTP/1.1 100 Continue\r\n\r\n"],
    ids=["103", "100"],
)
def test_interim_answers_are_not_taken_for_the_final_one(
    proxy: ProxyHarness, raw_upstream: RawFactory, interim: bytes
) -> None:
    upstream = raw_upstream(_answers_after_interim(interim))
    route_to(proxy, upstream.port)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    bodies = []
    for _ in range(3):
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200
        bodies.append(response.read())

    assert bodies == [b"answer-0", b"answer-1", b"answer-2"]
    assert upstream.connections == 1


def test_interim_answers_on_separate_clients_do_not_cross(proxy: ProxyHarness, raw_upstream: RawFactory) -> None:
    # The reported symptom: the final answer left unread on a parked connection went to the next client.
    upstream = raw_upstream(_answers_after_interim(b"HTTP/1.1 103 Early Hints\r\n\r\n"))
    route_to(proxy, upstream.port)
    first = raw_exchange(proxy.port, b"GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    second = raw_exchange(proxy.port, b"GET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")

    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b"answer-0")
    assert second.startswith(b"HTTP/1.1 200 OK\r\n") and second.endswith(b"answer-1")


def test_101_from_the_upstream_is_a_502(proxy: ProxyHarness, raw_upstream: RawFactory) -> None:
    recorder = Recorder(raw_upstream, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    route_to(proxy, recorder.port)
    answer = raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == b"502"


def test_a_connection_with_unread_bytes_is_not_reused(proxy: ProxyHarness, raw_upstream: RawFactory) -> None:
    def serve(sock: socket.socket) -> None:
        while request := read_request(sock):
            if request.startswith(b"HEAD"):
                # Wrongly sends a body with the answer to HEAD.
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            else:
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nget")

    upstream = raw_upstream(serve)
    route_to(proxy, upstream.port)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    conn.request("HEAD", "/")
    head = conn.getresponse()
    head.read()
    assert head.status == 200
    time.sleep(0.1)  # let the stray body arrive whichever way the kernel splits it
    conn.request("GET", "/")
    response = conn.getresponse()

    assert (response.status, response.read()) == (200, b"get")
    assert upstream.connections == 2


# --- 3. Strict framing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\nX-B: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\rX-B: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x002\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX(A): 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX\xe9: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0_5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nhello\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    ],
    ids=[
        "bare-lf",
        "bare-cr",
        "nul",
        "name-not-token",
        "name-not-ascii",
        "empty-name",
        "chunk-0x",
        "chunk-plus",
        "chunk-underscore",
        "chunk-leading-space",
        "chunk-size-overflows-64-bits",
        "obs-fold",
        "lf-only",
        "chunk-without-crlf",
    ],
)
def test_lenient_framing_is_refused_with_400(
    proxy: ProxyHarness, demo_release: Callable[[str], DemoRelease], request_bytes: bytes
) -> None:
    v1 = demo_release("v1")
    route_to(proxy, v1.port)
    answer = raw_exchange(proxy.port, request_bytes)
    assert status_of(answer) == b"400", answer
    assert b"Connection: close\r\n" in answer


def test_upstream_header_name_not_a_token_is_a_502(proxy: ProxyHarness, raw_upstream: RawFactory) -> None:
    recorder = Recorder(raw_upstream, b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 2\r\n\r\nok")
    route_to(proxy, recorder.port)
    answer = raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == b"502"


def test_upstream_chunk_size_with_0x_is_a_502(proxy: ProxyHarness, raw_upstream: RawFactory) -> None:
    answer_bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nok\r\n0\r\n\r\n"
    recorder = Recorder(raw_upstream, answer_bytes)
    route_to(proxy, recorder.port)
    # A small answer is held until it is complete, so its bad framing is found before any byte goes out.
    answer = raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == b"502"


def test_a_large_upstream_answer_with_bad_chunking_is_cut(proxy: ProxyHarness, raw_upstream: RawFactory) -> None:
    big = b"x" * 70_000
    answer_bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0x2\r\nok\r\n0\r\n\r\n"
    recorder = Recorder(raw_upstream, answer_bytes % (len(big), big))
    route_to(proxy, recorder.port)
    answer = raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    # The head went out before the bad chunk was seen: the client connection is closed mid-answer.
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert not answer.endswith(b"0\r\n\r\n")


# --- 4. Non-idempotent requests are not resent; stale pooled connections are not reused -----------


def _one_answer_then_drop(received: list[bytes]) -> Callable[[socket.socket], None]:
    def serve(sock: socket.socket) -> None:
        received.append(read_request(sock))
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        received.append(read_request(sock))  # then closes: the request taken may have run

    return serve


def test_a_post_lost_on_a_reused_connection_is_not_resent(proxy: ProxyHarness, raw_upstream: RawFactory) -> None:
    received: list[bytes] = []
    upstream = raw_upstream(_one_answer_then_drop(received))
    route_to(proxy, upstream.port)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    conn.request("POST", "/pay", body=b"1")
    first = conn.getresponse()
    first.read()
    conn.request("POST", "/pay", body=b"1")
    second = conn.getresponse()
    second.read()

    assert (first.status, second.status) == (200, 502)
    assert sum(r.startswith(b"POST") for r in received) == 2, "the second POST reached the upstream once"
    assert upstream.connections == 1


def test_a_get_lost_on_a_reused_connection_is_still_resent(proxy: ProxyHarness, raw_upstream: RawFactory) -> None:
    received: list[bytes] = []
    upstream = raw_upstream(_one_answer_then_drop(received))
    route_to(proxy, upstream.port)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    statuses = []
    for _ in range(2):
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
    assert statuses == [200, 200]
    assert upstream.connections == 2


def test_a_put_lost_on_a_reused_connection_is_resent_with_its_body(
    proxy: ProxyHarness, raw_upstream: RawFactory
) -> None:
    received: list[bytes] = []

    def serve(sock: socket.socket) -> None:
        for answer in (True, False):  # one answer, then the next request is taken and lost
            data = read_request(sock)
            if not data:
                return  # the proxy closed its pooled connection
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            while len(body) < length and (more := sock.recv(65536)):
                body += more
            received.append(body)
            if answer:
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    upstream = raw_upstream(serve)
    route_to(proxy, upstream.port)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    statuses = []
    for body in (b"first", b"second"):
        conn.request("PUT", "/doc", body=body)
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)

    assert statuses == [200, 200]
    assert received[:3] == [b"first", b"second", b"second"], "the resent PUT carried its body again"
    assert upstream.connections == 2


def test_a_pooled_connection_idle_too_long_is_not_reused(
    proxy: ProxyHarness, raw_upstream: RawFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream_module, "IDLE_REUSE_SECONDS", 0.2)
    recorder = Recorder(raw_upstream)
    route_to(proxy, recorder.port)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)

    def get() -> None:
        conn.request("GET", "/")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"ok")

    get()
    get()
    assert recorder.upstream.connections == 1, "a connection idle briefly is reused"
    time.sleep(0.4)
    get()
    assert recorder.upstream.connections == 2, "a connection idle too long is replaced by a fresh one"


def test_a_post_moves_on_from_a_replica_that_refuses(
    proxy: ProxyHarness, demo_release: Callable[[str], DemoRelease]
) -> None:
    healthy = demo_release("v1")
    add_replicas(proxy, "v1", [dead_port(), healthy.port])
    proxy.route({"v1": 100})
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    conn.request("POST", "/echo", body=b"once")
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b"once")


# --- 5. Inactivity timeouts after the head -------------------------------------------------------


@pytest.fixture
def short_idle(proxy: ProxyHarness) -> float:
    proxy.proxy.limits = dataclasses.replace(proxy.proxy.limits, io_seconds=0.3, upstream_seconds=0.3)
    return 0.3


def _swallow(sock: socket.socket) -> None:
    # Reads whatever comes and never answers, until the proxy closes the connection.
    sock.settimeout(10)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000000\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
    ],
    ids=["small-body", "streamed-body", "chunked-body"],
)
def test_a_client_that_never_sends_its_body_is_dropped(
    proxy: ProxyHarness, raw_upstream: RawFactory, short_idle: float, request_bytes: bytes
) -> None:
    upstream = raw_upstream(_swallow)
    route_to(proxy, upstream.port)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(request_bytes)
        assert wait_closed(sock) < 3
    deadline = time.monotonic() + 2
    while inflight(proxy) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert inflight(proxy) == 0
    backend = proxy.proxy.backend("v1")
    assert backend is not None
    assert proxy.run(backend.drain(1.0)) is True


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
        b"HTTP/1.1 200 OK\r\n\r\nabc",
    ],
    ids=["small", "large", "chunked", "close-delimited"],
)
def test_a_stalled_upstream_answer_is_dropped(
    proxy: ProxyHarness, raw_upstream: RawFactory, short_idle: float, answer: bytes
) -> None:
    def stall(sock: socket.socket) -> None:
        read_request(sock)
        sock.sendall(answer)
        _swallow(sock)

    upstream = raw_upstream(stall)
    route_to(proxy, upstream.port)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        # A small answer cut short is still a 502 (then the connection closes, as asked); a longer one
        # whose head went out can only be cut: either way the client is not left waiting.
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert wait_closed(sock) < 3
    deadline = time.monotonic() + 2
    while inflight(proxy) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert inflight(proxy) == 0
