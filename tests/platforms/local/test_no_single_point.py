"""No single point of failure on local: the public address lives in a proxy process of its own.

Real supervisor, proxy and release processes on loopback. Killing the supervisor leaves the address
serving (and the proxy relaunches it); killing the proxy leaves the socket accepting until the
supervisor's next proxy serves it; killing both is repaired by the next CLI call; SIGTERM drains
for `drain_seconds`.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.platforms.local import LocalPlatform, read_status, supervisor_status
from orchestrator.platforms.local.process import process_start_ticks
from tests.platforms.local.supervisor_gap import measure_gap, measure_supervisor_gap

Factory = Callable[..., LocalPlatform]


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def is_running(pid: int) -> bool:
    return process_start_ticks(pid) is not None


def answers(url: str, version: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=2)
    try:
        conn.request("GET", "/version")
        response = conn.getresponse()
        return response.status == 200 and json.loads(response.read())["version"] == version
    except OSError:
        return False
    finally:
        conn.close()


def proxy_pid(platform: LocalPlatform) -> int:
    return int(json.loads(platform.paths.proxy_pid.read_text())["pid"])


def serving(platform: LocalPlatform, version: str = "v1") -> LocalPlatform:
    platform.start(version, None)
    platform.route({version: 100})
    assert answers(platform.live_url(), version)
    return platform


def test_supervisor_sigkill_under_load_fails_no_request_and_it_comes_back(platform_factory: Factory) -> None:
    platform = serving(platform_factory(replicas=2))
    before = read_status(platform.paths.root)
    assert before is not None and before.proxy is not None and before.proxy.up
    replica_pids = [r.pid for r in before.releases[0].replicas]

    measured = measure_supervisor_gap(platform)

    assert measured.failed == 0, f"{measured.failed} requests failed while the supervisor was down"
    assert measured.answered > 20, "the load kept being answered"
    assert measured.back_s is not None, "the proxy's watchdog relaunched the supervisor"
    after = read_status(platform.paths.root)
    assert after is not None and after.pid != before.pid
    assert after.proxy is not None and after.proxy.up and after.proxy.pid == before.proxy.pid, "proxy adopted"
    assert after.proxy.in_sync and after.proxy.weights == {"v1": 100}
    assert [r.pid for r in after.releases[0].replicas] == replica_pids, "replicas adopted, not restarted"
    # The relaunched supervisor does its job: a replica that dies now is restarted.
    os.killpg(replica_pids[0], signal.SIGKILL)
    wait_for(lambda: _replica_alive_with_new_pid(platform, replica_pids[0]))


def _replica_alive_with_new_pid(platform: LocalPlatform, old: int) -> bool:
    status = read_status(platform.paths.root)
    return status is not None and status.releases[0].replicas[0].pid != old and status.releases[0].replicas[0].alive


def test_proxy_sigkill_keeps_the_socket_accepting_until_the_next_proxy_serves(platform_factory: Factory) -> None:
    platform = serving(platform_factory())
    old_proxy = proxy_pid(platform)
    host, port = platform.live_url().removeprefix("http://").split(":")
    refused: list[float] = []

    def kill_and_probe_connects() -> None:
        os.kill(old_proxy, signal.SIGKILL)
        # Until a new proxy serves, a connect must still succeed (the supervisor holds the socket).
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host, int(port)), timeout=1):
                    pass
            except ConnectionRefusedError:
                refused.append(time.monotonic())
            if _new_proxy(platform, old_proxy):
                return
            time.sleep(0.005)

    url = platform.live_url()
    measured = measure_gap(url, kill_and_probe_connects, back=lambda: answers(url, "v1"))

    assert refused == [], "the public socket refused connections while the proxy restarted"
    assert measured.back_s is not None
    assert not is_running(old_proxy)
    status = read_status(platform.paths.root)
    assert status is not None and status.proxy is not None and status.proxy.up and status.proxy.pid != old_proxy


def _new_proxy(platform: LocalPlatform, old: int) -> bool:
    try:
        return proxy_pid(platform) != old
    except (OSError, ValueError):
        return False


def test_with_supervisor_and_proxy_both_killed_a_status_call_brings_the_address_back(
    platform_factory: Factory,
) -> None:
    platform = serving(platform_factory())
    before = read_status(platform.paths.root)
    assert before is not None
    supervisor, proxy = before.pid, proxy_pid(platform)
    release_pid = before.releases[0].pid

    os.kill(proxy, signal.SIGKILL)
    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: not is_running(proxy) and not is_running(supervisor))
    assert not answers(platform.live_url(), "v1")

    shown = supervisor_status(platform._config, platform._workspace)

    assert shown["running"] is True and shown["pid"] != supervisor
    assert shown["proxy"]["up"] is True and shown["proxy"]["pid"] not in (None, proxy)
    assert shown["live"] == "v1" and shown["releases"][0]["pid"] == release_pid, "the release was adopted"
    assert answers(platform.live_url(), "v1")


def test_sigterm_drains_for_drain_seconds_then_exits(platform_factory: Factory) -> None:
    platform = serving(platform_factory(drain_seconds=1.0))
    status = read_status(platform.paths.root)
    assert status is not None and status.drain_seconds == 1.0
    pid, proxy = status.pid, proxy_pid(platform)
    host, port = platform.live_url().removeprefix("http://").split(":")
    slow = http.client.HTTPConnection(host, int(port), timeout=20)
    slow.request("GET", "/slow?ms=6000")
    wait_for(lambda: _inflight(platform) == 1)

    began = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not is_running(pid) and not is_running(proxy))
    took = time.monotonic() - began

    assert 1.0 <= took < 5.0, f"SIGTERM took {took:.2f} s with drain_seconds 1 and a 6 s request in flight"
    try:
        slow.getresponse().read()
        cut = False
    except (OSError, http.client.HTTPException):
        cut = True
    assert cut, "the request still open after drain_seconds is closed"
    assert not answers(platform.live_url(), "v1"), "nothing relaunched the front after a deliberate stop"


def _inflight(platform: LocalPlatform) -> int:
    status = read_status(platform.paths.root)
    return 0 if status is None else sum(r.inflight for r in status.releases)


def test_stop_verb_ends_the_proxy_process_too(platform_factory: Factory, tmp_path: Path) -> None:
    platform = serving(platform_factory())
    proxy = proxy_pid(platform)
    from orchestrator.platforms.local import supervisor_stop

    assert supervisor_stop(platform._config, platform._workspace) == ["v1"]
    wait_for(lambda: not is_running(proxy), timeout=10)
    assert supervisor_status(platform._config, platform._workspace)["running"] is False
