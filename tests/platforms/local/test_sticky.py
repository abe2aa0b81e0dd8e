"""Sticky sessions that keep the measured share on the weight (no Flagger #1532 drift): the choice
itself, then through the real proxy with real clients holding their cookies."""

from __future__ import annotations

import http.client
import random
from collections import Counter

from orchestrator.platforms.local.sticky import StickyRule, StickyTable
from tests.platforms.local.conftest import DemoRelease, ProxyHarness

COOKIE = StickyRule(cookie="release")


def _cookie_of(pin_line: bytes) -> bytes:
    return pin_line.split(b": ", 1)[1].split(b";", 1)[0]


def test_a_new_client_is_pinned_where_the_share_is_short_and_keeps_its_release() -> None:
    table = StickyTable({"v1": 90, "v2": 10}, COOKIE)
    jar: dict[int, bytes] = {}
    got: dict[int, set[str]] = {}
    for i in range(2000):
        client = i % 200
        headers = [(b"Cookie", jar[client])] if client in jar else []
        pin = table.choose(headers)
        assert pin is not None
        if pin.set_cookie:
            jar[client] = _cookie_of(pin.set_cookie)
        got.setdefault(client, set()).add(pin.version)
    counts = table.counts()
    assert abs(100 * counts["v2"] / 2000 - 10) <= 1.0, counts
    assert all(len(versions) == 1 for versions in got.values()), "every client stayed on its first release"


def test_heavy_pinned_clients_are_moved_before_the_share_drifts() -> None:
    # Flagger #1532: pinned canary clients that send most of the traffic drag the share with them.
    table = StickyTable({"v1": 90, "v2": 10}, COOKIE)
    rng = random.Random(7)
    jar: dict[int, bytes] = {}
    for _ in range(5000):
        client = 0 if rng.random() < 0.3 else rng.randrange(1, 500)  # client 0 sends 30% of requests
        headers = [(b"Cookie", jar[client])] if client in jar else []
        pin = table.choose(headers)
        assert pin is not None
        if pin.set_cookie:
            jar[client] = _cookie_of(pin.set_cookie)
    share = 100 * table.counts()["v2"] / 5000
    assert abs(share - 10) <= 2.0, share


def test_a_pin_to_a_release_without_weight_is_replaced() -> None:
    table = StickyTable({"v1": 50, "v3": 50}, COOKIE)
    pin = table.choose([(b"Cookie", b"other=1; release=v2")])
    assert pin is not None and pin.version in ("v1", "v3") and pin.set_cookie.startswith(b"Set-Cookie: release=")


def test_a_header_pins_by_its_value() -> None:
    table = StickyTable({"v1": 50, "v2": 50}, StickyRule(header="X-User"))
    first = {user: table.choose([(b"x-user", user)]) for user in (b"a", b"b", b"c", b"d")}
    again = {user: table.choose([(b"X-User", user)]) for user in first}
    assert {u: p.version for u, p in first.items() if p} == {u: p.version for u, p in again.items() if p}
    assert all(p is not None and p.set_cookie == b"" for p in first.values())


def test_the_proxy_pins_clients_by_cookie_while_the_share_follows_the_weight(
    proxy: ProxyHarness, demo_release: type[DemoRelease]
) -> None:
    v1, v2 = demo_release("v1"), demo_release("v2")
    proxy.add("v1", v1.port)
    proxy.add("v2", v2.port)
    proxy.call(lambda: proxy.proxy.route({"v1": 80, "v2": 20}, COOKIE))
    served: Counter[str] = Counter()
    conns = [http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10) for _ in range(40)]
    cookies: dict[int, str] = {}
    first: dict[int, str] = {}
    switched = 0
    for _ in range(10):  # forty clients at once, each asking in turn
        for i, conn in enumerate(conns):
            conn.request("GET", "/version", headers={"Cookie": cookies[i]} if i in cookies else {})
            response = conn.getresponse()
            response.read()
            version = response.getheader("X-Release-Version")
            assert version is not None
            set_cookie = response.getheader("Set-Cookie")
            if set_cookie:
                cookies[i] = set_cookie.split(";", 1)[0]
            switched += first.setdefault(i, version) != version
            served[version] += 1
    for conn in conns:
        conn.close()
    assert sum(served.values()) == 400
    assert abs(100 * served["v2"] / 400 - 20) <= 3, served
    assert switched == 0, "every client keeps its release"

    proxy.call(lambda: proxy.proxy.route({"v1": 100}, COOKIE))
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("GET", "/version", headers={"Cookie": "release=v2"})
    response = conn.getresponse()
    response.read()
    assert response.getheader("X-Release-Version") == "v1", "an aborted canary keeps none of its clients"
    assert response.getheader("Set-Cookie") is None


def test_the_supervisor_routes_sticky_through_its_proxy_process(platform_factory: object) -> None:
    from orchestrator.contract.canary import Stickiness
    from orchestrator.platforms.local import LocalPlatform

    platform: LocalPlatform = platform_factory()  # type: ignore[operator]
    platform.start("v1", None)
    platform.start("v2", None)
    platform.route_sticky({"v1": 50, "v2": 50}, Stickiness(cookie="rel", header=None))
    port = int(platform.live_url().rpartition(":")[2])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/version")
    response = conn.getresponse()
    response.read()
    pinned = response.getheader("X-Release-Version")
    set_cookie = response.getheader("Set-Cookie")
    assert set_cookie is not None and set_cookie.startswith(f"rel={pinned}; Path=/; HttpOnly")
    for _ in range(20):
        conn.request("GET", "/version", headers={"Cookie": f"rel={pinned}"})
        response = conn.getresponse()
        response.read()
        assert response.getheader("X-Release-Version") == pinned
