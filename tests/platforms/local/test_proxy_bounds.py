"""The proxy under abuse and with awkward releases, on real loopback sockets: chunked bodies in front of
Python's `http.server`, the connection cap, slowloris floods, and the per-connection deadlines."""

from __future__ import annotations

import contextlib
import http.client
import json
import resource
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orchestrator.platforms.local import LocalPlatform
from orchestrator.platforms.local.control import read_status
from tests.platforms.local.conftest import DemoRelease, ProxyHarness
from tests.platforms.local.test_proxy import raw_exchange

ProxyFactory = Callable[..., ProxyHarness]


def version_of(conn: http.client.HTTPConnection) -> tuple[int, str]:
    conn.request("GET", "/version")
    response = conn.getresponse()
    body = response.read()
    return response.status, json.loads(body)["version"] if response.status == 200 else body.decode()


def chunked_post(port: int, payload: bytes, pieces: int) -> tuple[int, bytes]:
    """POST `payload` in `pieces` chunks on one keep-alive connection, then a GET on the same connection."""
    step = max(1, len(payload) // pieces)
    parts = (payload[i : i + step] for i in range(0, len(payload), step))
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", "/echo")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders(body + b"0\r\n\r\n")
    response = conn.getresponse()
    result = response.status, response.read()
    conn.close()
    return result


@pytest.fixture
def many_files() -> Iterator[int]:
    """The soft open-file limit raised to the hard one for this test (a flood needs thousands)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 8192:
        pytest.fail(f"the hard open-file limit is {hard}: these tests need 8192 (raise it with ulimit -Hn as root)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- chunked requests in front of http.server ---------------------------------------------------


@pytest.mark.parametrize("size", [2_000, 3 << 20], ids=["held-whole", "streamed"])
def test_chunked_posts_to_an_http_server_release_never_change_another_clients_answer(
    proxy: ProxyHarness, demo_release: Callable[[str], DemoRelease], size: int
) -> None:
    # http.server reads no chunked body: relayed as it came, the chunks would be taken for a second
    # request on a pooled connection, and the 400/501 answer to it would go to some other client.
    v1 = demo_release("v1")
    proxy.add("v1", v1.port)
    proxy.route({"v1": 100})
    stop = threading.Event()
    answers: Counter[tuple[int, str]] = Counter()
    lock = threading.Lock()

    def reader() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        while not stop.is_set():
            answer = version_of(conn)
            with lock:
                answers[answer] += 1

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for thread in readers:
        thread.start()
    payload = bytes(range(256)) * (size // 256)
    try:
        with ThreadPoolExecutor(4) as pool:
            posts = list(pool.map(lambda _: chunked_post(proxy.port, payload, 7), range(12 if size < 10_000 else 4)))
        deadline = time.monotonic() + 10
        while sum(answers.values()) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)  # enough GETs to have shared pooled connections with the POSTs
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=10)

    assert dict(answers) == {(200, "v1"): sum(answers.values())}, "every GET got its own answer"
    assert sum(answers.values()) >= 50
    if size < 10_000:
        assert posts == [(200, payload)] * len(posts), "a body held whole reaches http.server with a length"
    else:
        # http.server cannot read a streamed chunked body: it answers without it and closes (the client
        # gets that answer, or a 502 when the close broke the upload first). The connection is never
        # pooled, so its misreading of the chunks reaches nobody else.
        assert all(status in (200, 502) for status, _ in posts), [(s, b[:80]) for s, b in posts]


# --- the connection cap --------------------------------------------------------------------------


def test_beyond_the_cap_with_every_connection_busy_a_newcomer_gets_503(
    limited_proxy: ProxyFactory, demo_release: Callable[[str], DemoRelease]
) -> None:
    proxy = limited_proxy(max_connections=2)
    v1 = demo_release("v1")
    proxy.add("v1", v1.port)
    proxy.route({"v1": 100})
    busy = [http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10) for _ in range(2)]
    for conn in busy:
        conn.request("GET", "/slow?ms=800")
    time.sleep(0.2)  # both requests reach the release (inflight is read below)
    assert proxy.call(lambda: proxy.proxy.backend("v1").inflight) == 2  # type: ignore[union-attr]

    refused = raw_exchange(proxy.port, b"GET /version HTTP/1.1\r\nHost: a\r\n\r\n")

    assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"connection limit" in refused
    for conn in busy:
        response = conn.getresponse()
        assert response.status == 200, "the clients already served are not cut"
        response.read()


def test_at_the_cap_an_idle_keepalive_connection_makes_room(
    limited_proxy: ProxyFactory, demo_release: Callable[[str], DemoRelease]
) -> None:
    proxy = limited_proxy(max_connections=1)
    v1 = demo_release("v1")
    proxy.add("v1", v1.port)
    proxy.route({"v1": 100})
    idle = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    assert version_of(idle) == (200, "v1")

    fresh = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    assert version_of(fresh) == (200, "v1")


def _slowloris(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        socks.append(sock)
    return socks


@pytest.mark.slow
@pytest.mark.parametrize("flood", [1_100, 3_000])
def test_a_slowloris_flood_locks_no_client_out(
    limited_proxy: ProxyFactory, demo_release: Callable[[str], DemoRelease], many_files: int, flood: int
) -> None:
    proxy = limited_proxy(max_connections=1_000)
    v1 = demo_release("v1")
    proxy.add("v1", v1.port)
    proxy.route({"v1": 100})
    regular = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    assert version_of(regular) == (200, "v1")
    started = time.monotonic()
    socks = _slowloris(proxy.port, flood)
    try:
        # A client with a keep-alive connection from before, and new clients arriving during the flood.
        assert [version_of(regular) for _ in range(5)] == [(200, "v1")] * 5
        for _ in range(20):
            newcomer = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
            assert version_of(newcomer) == (200, "v1")
            newcomer.close()
        assert time.monotonic() - started < 30
    finally:
        for sock in socks:
            sock.close()


# --- deadlines and sizes -------------------------------------------------------------------------


def test_a_head_that_does_not_arrive_in_time_closes_the_connection(
    limited_proxy: ProxyFactory, demo_release: Callable[[str], DemoRelease]
) -> None:
    proxy = limited_proxy(head_seconds=0.3)
    v1 = demo_release("v1")
    proxy.add("v1", v1.port)
    proxy.route({"v1": 100})
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        started = time.monotonic()
        # Trickling bytes does not buy time: the deadline runs from the head's first byte.
        for _ in range(10):
            try:
                sock.sendall(b"X")
            except OSError:
                break
            time.sleep(0.1)
        sock.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            while sock.recv(65536):
                pass
        assert time.monotonic() - started < 2.5
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    assert version_of(conn) == (200, "v1")


def test_an_idle_keepalive_connection_is_closed_after_the_idle_limit(
    limited_proxy: ProxyFactory, demo_release: Callable[[str], DemoRelease]
) -> None:
    proxy = limited_proxy(idle_seconds=0.3)
    v1 = demo_release("v1")
    proxy.add("v1", v1.port)
    proxy.route({"v1": 100})
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"GET /version HTTP/1.1\r\nHost: a\r\n\r\n")
        started = time.monotonic()
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert 0.2 < time.monotonic() - started < 2.5


def test_a_head_larger_than_the_limit_is_431_and_held_no_longer(
    limited_proxy: ProxyFactory, demo_release: Callable[[str], DemoRelease]
) -> None:
    proxy = limited_proxy(max_head_bytes=8_192)
    v1 = demo_release("v1")
    proxy.add("v1", v1.port)
    proxy.route({"v1": 100})
    # Never finished: the proxy must not keep buffering it.
    endless = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20_000
    answer = raw_exchange(proxy.port, endless)
    assert answer.startswith(b"HTTP/1.1 431 ")
    whole = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-H: %s\r\n" % (b"b" * 100) * 100 + b"\r\n"
    assert raw_exchange(proxy.port, whole).startswith(b"HTTP/1.1 431 ")


def test_pipelined_requests_are_answered_in_order(
    proxy: ProxyHarness, demo_release: Callable[[str], DemoRelease]
) -> None:
    v1 = demo_release("v1")
    proxy.add("v1", v1.port)
    proxy.route({"v1": 100})
    requests = b"".join(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n%02d" % i for i in range(5))
    answer = raw_exchange(proxy.port, requests + b"GET /version HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    bodies = [part.split(b"\r\n\r\n", 1)[1][:2] for part in answer.split(b"HTTP/1.1 200 OK\r\n")[1:]]
    assert bodies == [b"%02d" % i for i in range(5)] + [b'{"']


def test_the_supervisor_raises_its_open_file_limit_and_says_so(
    platform_factory: Callable[..., LocalPlatform], tmp_path: Path, many_files: int
) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # the common default, inherited by the daemon
    try:
        platform = platform_factory()
        platform.start("v1", None)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    status = read_status(platform.paths.root)
    assert status is not None
    limits = Path(f"/proc/{status.pid}/limits").read_text()
    soft_now = next(line.split()[3] for line in limits.splitlines() if line.startswith("Max open files"))
    assert int(soft_now) == hard
    assert f"open-file limit raised from 1024 to {hard}" in platform.paths.supervisor_log.read_text()
