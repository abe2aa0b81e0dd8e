"""The same behaviour from both data planes, `local.proxy: python` and `local.proxy: haproxy`: a real
supervisor, real demo releases, real sockets (and Debian's haproxy, driven through its runtime API).

Then what only haproxy needs showing: that switches never reload it, and that a config change does,
without a failed request.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from orchestrator.platforms.local import LocalPlatform, read_status
from orchestrator.platforms.local.process import process_start_ticks
from tests.platforms.local.test_platform import fetch_version, public_conn

Factory = Callable[..., LocalPlatform]


@pytest.fixture(params=["python", "haproxy"])
def data_plane(request: pytest.FixtureRequest) -> str:
    if request.param == "haproxy" and shutil.which("haproxy") is None and not os.path.exists("/usr/sbin/haproxy"):
        pytest.fail("local.proxy: haproxy needs Debian's haproxy: apt-get install haproxy (.ci/install.sh does)")
    return str(request.param)


@pytest.fixture
def platform(platform_factory: Factory, data_plane: str) -> LocalPlatform:
    return platform_factory(proxy=data_plane)


def test_the_next_request_on_a_keepalive_connection_follows_a_switch(platform: LocalPlatform) -> None:
    platform.start("v1", None)
    platform.start("v2", None)
    platform.route({"v1": 100})
    conn = public_conn(platform)
    assert [fetch_version("", conn) for _ in range(3)] == ["v1"] * 3
    assert conn.sock is not None
    client_port = conn.sock.getsockname()[1]

    platform.route({"v2": 100})

    assert fetch_version("", conn) == "v2"
    assert conn.sock.getsockname()[1] == client_port, "the client connection survives the switch"


def test_a_request_in_flight_during_a_switch_finishes_on_the_old_release(platform: LocalPlatform) -> None:
    platform.start("v1", None)
    platform.start("v2", None)
    platform.route({"v1": 100})
    slow: dict[str, str] = {}

    def slow_request() -> None:
        conn = public_conn(platform)
        slow["version"] = _slow_version(conn)
        slow["next"] = fetch_version("", conn)

    worker = threading.Thread(target=slow_request)
    worker.start()
    deadline = time.monotonic() + 5
    while _inflight(platform, "v1") == 0:
        assert time.monotonic() < deadline, "the slow request never reached v1"
        time.sleep(0.01)

    platform.route({"v2": 100})
    assert fetch_version("", public_conn(platform)) == "v2"
    worker.join(timeout=10)

    assert slow == {"version": "v1", "next": "v2"}


def _slow_version(conn: http.client.HTTPConnection) -> str:
    conn.request("GET", "/slow?ms=800")
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, body
    return str(json.loads(body)["version"])


def _inflight(platform: LocalPlatform, version: str) -> int:
    status = read_status(platform.paths.root)
    assert status is not None
    return next((r.inflight for r in status.releases if r.version == version), 0)


def test_canary_weights_are_honoured_per_request(platform: LocalPlatform) -> None:
    platform.start("v1", None)
    platform.start("v2", None)
    platform.route({"v1": 80, "v2": 20})
    conn = public_conn(platform)
    seen = Counter(fetch_version("", conn) for _ in range(400))
    # Random (python) or smooth round-robin (haproxy): either way within 4 sd of Binomial(400, 0.2).
    assert 45 <= seen["v2"] <= 115 and seen["v1"] + seen["v2"] == 400


def test_rollback_returns_traffic_at_once(platform: LocalPlatform) -> None:
    v1 = platform.start("v1", None)
    platform.route({"v1": 100})
    platform.start("v2", None)
    platform.route({"v2": 100})
    conn = public_conn(platform)
    assert fetch_version("", conn) == "v2"

    before = read_status(platform.paths.root)
    platform.rollback(v1)

    assert fetch_version("", conn) == "v1"
    after = read_status(platform.paths.root)
    assert before is not None and after is not None
    assert {r.version: r.pid for r in after.releases} == {r.version: r.pid for r in before.releases}, (
        "v1 was still running: the rollback moves traffic, it starts nothing"
    )


def test_retiring_a_release_waits_for_its_requests_and_stops_serving_it(platform: LocalPlatform) -> None:
    platform.start("v1", None)
    platform.route({"v1": 100})
    platform.start("v2", None)
    platform.route({"v2": 100})
    assert platform.retire(0) == ["v1"]
    conn = public_conn(platform)
    assert Counter(fetch_version("", conn) for _ in range(20)) == {"v2": 20}


# --- haproxy only ------------------------------------------------------------------------------


def _workers(platform: LocalPlatform) -> int:
    return (platform.paths.root / "haproxy.log").read_text().count("New worker")


@pytest.fixture
def haproxy_platform(platform_factory: Factory) -> Iterator[Factory]:
    if shutil.which("haproxy") is None and not os.path.exists("/usr/sbin/haproxy"):
        pytest.fail("local.proxy: haproxy needs Debian's haproxy: apt-get install haproxy (.ci/install.sh does)")

    def make(**overrides: object) -> LocalPlatform:
        return platform_factory(proxy="haproxy", **overrides)

    yield make


def test_haproxy_switches_and_canary_steps_never_reload_it(haproxy_platform: Factory) -> None:
    platform = haproxy_platform()
    platform.start("v1", None)
    platform.start("v2", None)
    platform.route({"v1": 100})
    workers = _workers(platform)
    for weights in ({"v1": 90, "v2": 10}, {"v1": 50, "v2": 50}, {"v2": 100}, {"v1": 100}, {"v2": 100}):
        platform.route(weights)
    assert fetch_version("", public_conn(platform)) == "v2"
    assert _workers(platform) == workers == 1, "the runtime API, not a reload, moved the traffic"


def test_a_config_change_reloads_haproxy_without_a_failed_request(haproxy_platform: Factory) -> None:
    # Clients that open a connection per request: a reload must refuse or reset none of them. (A client
    # idle on a keep-alive connection may see it closed by the old worker between two requests, which
    # HTTP/1.1 clients must expect of any idle connection: RFC 9112 §9.3.1.)
    platform = haproxy_platform()
    platform.start("v1", None)
    platform.route({"v1": 100})
    status = read_status(platform.paths.root)
    assert status is not None
    failures: list[str] = []
    answered = Counter[str]()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            conn = public_conn(platform)
            try:
                conn.request("GET", "/version", headers={"Connection": "close"})
                response = conn.getresponse()
                answered[json.loads(response.read())["version"]] += 1
            except (OSError, ValueError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
            finally:
                conn.close()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        # The supervisor dies; the next one comes with another connection cap: it adopts haproxy and
        # reloads it (master-worker: the new worker takes the socket, the old one finishes its requests).
        os.kill(status.pid, signal.SIGKILL)
        listen = platform.live_url().removeprefix("http://")
        haproxy_platform(state_dir=platform.paths.root, listen=listen, max_connections=500).start("v1", None)
        deadline = time.monotonic() + 10
        while _workers(platform) < 2:
            assert time.monotonic() < deadline, "haproxy was not reloaded"
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert failures == []
    assert set(answered) == {"v1"} and answered["v1"] > 50
    assert "maxconn 500" in (platform.paths.root / "haproxy.cfg").read_text()


def test_after_a_reload_switches_reach_the_new_worker(haproxy_platform: Factory) -> None:
    # The runtime API's kept sessions must not stay with the old worker, which takes commands while it
    # finishes its requests but no longer routes new connections.
    platform = haproxy_platform()
    platform.start("v1", None)
    platform.start("v2", None)
    platform.route({"v1": 100})
    status = read_status(platform.paths.root)
    assert status is not None
    os.kill(status.pid, signal.SIGKILL)
    listen = platform.live_url().removeprefix("http://")
    adopting = haproxy_platform(state_dir=platform.paths.root, listen=listen, max_connections=500)
    adopting.start("v1", None)
    assert _workers(platform) == 2, "the new connection cap was applied by a reload"

    adopting.route({"v2": 100})

    assert [fetch_version("", public_conn(platform)) for _ in range(3)] == ["v2"] * 3


def test_settings_a_crash_kept_from_haproxy_are_applied_by_the_next_supervisor(haproxy_platform: Factory) -> None:
    """A supervisor writes the new config, then dies before the reload that would read it: the next
    one finds the file as it wants it, yet haproxy runs the old settings, so it must reload all the same."""
    platform = haproxy_platform()
    platform.start("v1", None)
    platform.route({"v1": 100})
    status = read_status(platform.paths.root)
    assert status is not None
    os.kill(status.pid, signal.SIGKILL)
    config = platform.paths.root / "haproxy.cfg"
    config.write_text(re.sub(r"(?m)^  maxconn \d+$", "  maxconn 500", config.read_text()))

    listen = platform.live_url().removeprefix("http://")
    haproxy_platform(state_dir=platform.paths.root, listen=listen, max_connections=500).start("v1", None)

    assert _workers(platform) == 2, "haproxy was reloaded to take maxconn 500"
    assert fetch_version("", public_conn(platform)) == "v1"


def test_a_killed_data_plane_is_started_again_by_the_next_switch(platform: LocalPlatform) -> None:
    """Each kill is followed by a start, which gives the monitor's restart time to run beside the
    switch's own: the two must not race (both adding servers, or one finding a process not up yet)."""
    platform.start("v1", None)
    platform.route({"v1": 100})
    for n in range(2, 6):
        status = read_status(platform.paths.root)
        assert status is not None and status.proxy.pid is not None
        os.killpg(status.proxy.pid, signal.SIGKILL)  # master and workers: it runs in a session of its own
        platform.start(f"v{n}", None)

        platform.route({f"v{n}": 100})

        assert [fetch_version("", public_conn(platform)) for _ in range(3)] == [f"v{n}"] * 3
        restarted = read_status(platform.paths.root)
        assert restarted is not None and restarted.proxy.pid not in (None, status.proxy.pid)


def test_an_haproxy_that_never_answers_is_killed_not_given_a_twin(haproxy_platform: Factory) -> None:
    """A supervisor that finds its haproxy alive but silent must not start a second one beside it: both
    would take the port, and new connections would be split between the old routing and the new."""
    platform = haproxy_platform()
    platform.start("v1", None)
    platform.start("v2", None)
    platform.route({"v1": 100})
    status = read_status(platform.paths.root)
    assert status is not None and status.proxy.pid is not None
    silent = status.proxy.pid
    try:
        os.killpg(silent, signal.SIGSTOP)
        os.kill(status.pid, signal.SIGKILL)  # its supervisor dies: the next one finds haproxy stopped
        adopting = haproxy_platform(state_dir=platform.paths.root, listen=platform.live_url().removeprefix("http://"))
        adopting.start("v1", None)
        adopting.route({"v2": 100})

        assert [fetch_version("", public_conn(platform)) for _ in range(40)] == ["v2"] * 40
        assert process_start_ticks(silent) is None, "the silent haproxy was killed"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(silent, signal.SIGKILL)
            os.killpg(silent, signal.SIGCONT)
