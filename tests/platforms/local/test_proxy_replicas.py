"""The proxy in front of a release with several replicas: round-robin, skipping and resending.

Replicas are demo apps in threads and raw-socket servers on 127.0.0.1, as in `test_proxy`.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections import Counter
from collections.abc import Callable

from tests.platforms.local.conftest import DemoRelease, ProxyHarness
from tests.platforms.local.test_proxy import RawUpstream, raw_upstream, read_request

__all__ = ["raw_upstream"]  # the fixture, imported so pytest finds it here

RawFactory = Callable[[Callable[[socket.socket], None]], RawUpstream]


def whoami(conn: http.client.HTTPConnection) -> int:
    conn.request("GET", "/whoami")
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, body
    return int(json.loads(body)["port"])


def add_replicas(proxy: ProxyHarness, version: str, ports: list[int]) -> None:
    proxy.call(lambda: proxy.proxy.add_backend(version, *ports))


def dead_port() -> int:
    listener = socket.create_server(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    listener.close()
    return port


def drop_without_answer(sock: socket.socket) -> None:
    # Takes the request and dies on it, as a replica killed mid-request does.
    read_request(sock)


def test_requests_go_round_robin_across_the_replicas_of_a_release(
    proxy: ProxyHarness, demo_release: Callable[[str], DemoRelease]
) -> None:
    ports = [demo_release("v1").port for _ in range(3)]
    add_replicas(proxy, "v1", ports)
    proxy.route({"v1": 100})
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)

    seen = Counter(whoami(conn) for _ in range(30))

    assert seen == dict.fromkeys(ports, 10)


def test_a_replica_that_refuses_connections_is_passed_over_without_a_failed_request(
    proxy: ProxyHarness, demo_release: Callable[[str], DemoRelease]
) -> None:
    live = [demo_release("v1").port, demo_release("v1").port]
    add_replicas(proxy, "v1", [live[0], dead_port(), live[1]])
    proxy.route({"v1": 100})
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)

    seen = Counter(whoami(conn) for _ in range(40))

    assert set(seen) == set(live) and sum(seen.values()) == 40


def test_when_no_replica_accepts_connections_the_answer_is_one_502(proxy: ProxyHarness) -> None:
    add_replicas(proxy, "v1", [dead_port(), dead_port()])
    proxy.route({"v1": 100})
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 502
    assert response.read().startswith(b"bad gateway: release v1 replica ")


def test_an_idempotent_request_a_replica_dies_on_is_resent_to_another_replica(
    proxy: ProxyHarness, raw_upstream: RawFactory, demo_release: Callable[[str], DemoRelease]
) -> None:
    dying, healthy = raw_upstream(drop_without_answer), demo_release("v1")
    add_replicas(proxy, "v1", [dying.port, healthy.port])  # a fresh backend starts at replica 0
    proxy.route({"v1": 100})
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)

    assert whoami(conn) == healthy.port
    assert dying.connections == 1


def test_a_non_idempotent_request_a_replica_took_is_not_resent(
    proxy: ProxyHarness, raw_upstream: RawFactory, demo_release: Callable[[str], DemoRelease]
) -> None:
    dying, healthy = raw_upstream(drop_without_answer), demo_release("v1")
    add_replicas(proxy, "v1", [dying.port, healthy.port])
    proxy.route({"v1": 100})
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)

    conn.request("POST", "/echo", body=b"pay once")
    response = conn.getresponse()

    assert response.status == 502
    assert response.read() == b"bad gateway: release v1 replica 0 closed the connection without answering\n"
    conn.request("POST", "/echo", body=b"pay once")
    assert conn.getresponse().read() == b"pay once", "the client connection survives, the next request goes on"
