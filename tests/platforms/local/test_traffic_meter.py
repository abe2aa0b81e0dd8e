"""The data plane counts each release's requests, answers by class and latency, and the supervisor
gives them over its control socket, from our proxy and from haproxy's stats."""

from __future__ import annotations

import http.client
import os
import shutil

import pytest

from orchestrator.platforms.local import LocalPlatform
from orchestrator.platforms.traffic import LATENCY_BOUNDS, TrafficSample, window
from tests.platforms.local.conftest import DemoRelease, ProxyHarness, free_port


def _get(port: int, path: str, times: int) -> list[int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    statuses = []
    for _ in range(times):
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
    conn.close()
    return statuses


def test_the_proxy_counts_requests_status_classes_and_latency_per_release(
    proxy: ProxyHarness, demo_release: type[DemoRelease]
) -> None:
    v1, v2 = demo_release("v1"), demo_release("v2")
    proxy.add("v1", v1.port)
    proxy.add("v2", v2.port)
    proxy.route({"v1": 100})
    assert _get(proxy.port, "/version", 7) == [200] * 7
    assert _get(proxy.port, "/missing", 3) == [404] * 3
    proxy.route({"v2": 100})
    assert _get(proxy.port, "/version", 4) == [200] * 4

    counted = proxy.call(proxy.proxy.traffic)

    assert counted["v1"].requests == 10
    assert counted["v1"].statuses == (0, 7, 0, 3, 0)
    assert counted["v2"].requests == 4 and counted["v2"].statuses == (0, 4, 0, 0, 0)
    assert counted["v1"].buckets is not None and sum(counted["v1"].buckets) == 10
    assert len(counted["v1"].buckets) == len(LATENCY_BOUNDS) + 1
    p95 = counted["v1"].quantile(0.95)
    assert p95 is not None and 0 < p95 < 5


def test_a_release_that_refuses_connections_is_counted_as_5xx(
    proxy: ProxyHarness, demo_release: type[DemoRelease]
) -> None:
    proxy.add("gone", free_port())  # nothing listens there
    proxy.route({"gone": 100})

    assert _get(proxy.port, "/version", 2) == [502, 502]

    gone = proxy.call(proxy.proxy.traffic)["gone"]
    assert gone.requests == 2 and gone.statuses[4] == 2 and gone.error_rate == 1.0


@pytest.mark.parametrize("data_plane", ["python", "haproxy"])
def test_the_supervisor_gives_the_data_planes_counters_over_the_control_socket(
    platform_factory: object, data_plane: str
) -> None:
    if data_plane == "haproxy" and shutil.which("haproxy") is None and not os.path.exists("/usr/sbin/haproxy"):
        pytest.fail("local.proxy: haproxy needs Debian's haproxy: apt-get install haproxy (.ci/install.sh does)")
    platform: LocalPlatform = platform_factory(proxy=data_plane)  # type: ignore[operator]
    platform.start("v1", None)
    platform.start("v2", None)
    platform.route({"v1": 100})
    port = int(platform.live_url().rpartition(":")[2])
    _get(port, "/version", 3)
    before = platform.traffic()
    platform.route({"v1": 50, "v2": 50})
    _get(port, "/version", 40)
    _get(port, "/missing", 2)

    counted = window(before, platform.traffic())

    assert isinstance(counted, TrafficSample) and counted.source == data_plane
    assert counted.get("v1").requests + counted.get("v2").requests == 42
    assert counted.get("v1").requests > 0 and counted.get("v2").requests > 0
    assert sum(counted.get(v).statuses[3] for v in ("v1", "v2")) == 2
    if data_plane == "python":
        assert counted.get("v1").buckets is not None
    else:
        assert counted.get("v1").buckets is None, "haproxy's stats have no latency histogram"
