"""LocalPlatform end to end: a real detached supervisor, real demo release processes, real sockets."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.errors import DeployError
from orchestrator.platforms.local import (
    LocalPlatform,
    read_status,
    supervisor_status,
    supervisor_stop,
)
from orchestrator.platforms.local.process import process_start_ticks
from tests.platforms.local.conftest import DEMO, free_port

Factory = Callable[..., LocalPlatform]


def fetch_version(url: str, conn: http.client.HTTPConnection | None = None) -> str:
    if conn is None:
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", "/version")
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, body
    return str(json.loads(body)["version"])


def public_conn(platform: LocalPlatform) -> http.client.HTTPConnection:
    host, port = platform.live_url().removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=5)


def is_running(pid: int) -> bool:
    return process_start_ticks(pid) is not None


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_local_platform_is_public_on_its_listen_address(platform_factory: Factory) -> None:
    platform = platform_factory()
    assert platform.name == "local"
    assert platform.live_url() == "http://" + platform._config.listen


def test_read_only_calls_start_nothing(platform_factory: Factory) -> None:
    platform = platform_factory()
    assert platform.live() is None
    assert platform.releases() == []
    assert not platform.paths.socket.exists()


def test_start_brings_a_release_up_without_traffic_and_is_idempotent(platform_factory: Factory) -> None:
    platform = platform_factory()
    release = platform.start("v1", "ghcr.io/acme/app@sha256:abc")

    assert release.version == "v1" and release.image == "ghcr.io/acme/app@sha256:abc"
    assert release.url is not None and fetch_version(release.url) == "v1"
    assert platform.start("v1", None) == release
    assert platform.live() is None, "a started release gets no traffic until routed"
    answer = public_conn(platform)
    answer.request("GET", "/")
    assert answer.getresponse().status == 503


def test_switch_moves_an_open_keepalive_connection_on_its_next_request(platform_factory: Factory) -> None:
    platform = platform_factory()
    platform.start("v1", None)
    platform.start("v2", None)
    platform.route({"v1": 100})
    conn = public_conn(platform)
    assert fetch_version("", conn) == "v1"
    assert conn.sock is not None
    client_port = conn.sock.getsockname()[1]

    platform.route({"v2": 100})

    assert fetch_version("", conn) == "v2"
    assert conn.sock.getsockname()[1] == client_port
    live = platform.live()
    assert live is not None and live.version == "v2"
    assert [r.version for r in platform.releases()] == ["v2", "v1"]


def test_canary_keeps_the_stable_release_as_live(platform_factory: Factory) -> None:
    platform = platform_factory()
    platform.start("v1", None)
    platform.route({"v1": 100})
    platform.start("v2", None)
    platform.route({"v1": 75, "v2": 25})
    conn = public_conn(platform)
    seen = [fetch_version("", conn) for _ in range(200)]
    assert 20 <= seen.count("v2") <= 85
    live = platform.live()
    assert live is not None and live.version == "v1"


def test_route_refuses_bad_weights_naming_the_fix(platform_factory: Factory) -> None:
    platform = platform_factory()
    platform.start("v1", None)
    with pytest.raises(DeployError, match="sum to 90: they must sum to 100") as bad_sum:
        platform.route({"v1": 90})
    assert bad_sum.value.operation == "route" and bad_sum.value.platform == "local"
    with pytest.raises(DeployError, match="release 'v9' is not running: start it before routing"):
        platform.route({"v9": 100})


def test_rollback_is_instant_and_restarts_a_retired_release(platform_factory: Factory) -> None:
    platform = platform_factory()
    v1 = platform.start("v1", None)
    platform.route({"v1": 100})
    platform.start("v2", None)
    platform.route({"v2": 100})
    conn = public_conn(platform)
    assert fetch_version("", conn) == "v2"

    began = time.monotonic()
    platform.rollback(v1)
    took = time.monotonic() - began

    assert fetch_version("", conn) == "v1"
    assert took < 0.25, f"rollback to a running release took {took:.3f} s"

    platform.route({"v2": 100})
    assert platform.retire(0) == ["v1"]
    platform.rollback(v1)
    assert fetch_version("", conn) == "v1"


def test_retire_keeps_the_newest_releases_without_traffic(platform_factory: Factory) -> None:
    platform = platform_factory()
    pids = {}
    for version in ("v1", "v2", "v3", "v4"):
        pids[version] = int((platform.start(version, None).ref or "").removeprefix("pid:"))
    platform.route({"v4": 100})

    stopped = platform.retire(1)

    assert sorted(stopped) == ["v1", "v2"]
    assert [r.version for r in platform.releases()] == ["v4", "v3"]
    wait_for(lambda: not is_running(pids["v1"]) and not is_running(pids["v2"]))
    assert is_running(pids["v3"]) and is_running(pids["v4"])
    assert platform.retire(1) == []


def test_retire_waits_for_requests_in_flight_on_the_retired_release(platform_factory: Factory) -> None:
    platform = platform_factory(drain_seconds=5.0)
    platform.start("v1", None)
    platform.route({"v1": 100})
    platform.start("v2", None)
    slow = public_conn(platform)
    slow.request("GET", "/slow?ms=700")
    time.sleep(0.2)
    platform.route({"v2": 100})

    stopped = platform.retire(0)

    response = slow.getresponse()
    assert response.status == 200 and json.loads(response.read())["version"] == "v1"
    assert stopped == ["v1"]


def test_stop_refuses_a_release_with_traffic_and_is_idempotent(platform_factory: Factory) -> None:
    platform = platform_factory()
    platform.start("v1", None)
    platform.route({"v1": 100})
    platform.start("v2", None)
    with pytest.raises(DeployError, match="still receives 100% of traffic: route it away first"):
        platform.stop("v1")
    platform.stop("v2")
    platform.stop("v2")
    assert [r.version for r in platform.releases()] == ["v1"]


def test_release_that_crashes_on_start_raises_with_its_log_tail(platform_factory: Factory) -> None:
    crash = (sys.executable, "-c", "import sys; print('boom: DATABASE_URL is not set', file=sys.stderr); sys.exit(3)")
    platform = platform_factory(command=crash)

    with pytest.raises(DeployError) as failure:
        platform.start("v1", None)

    message = str(failure.value)
    assert "release v1 exited with code 3 during startup" in message
    assert "boom: DATABASE_URL is not set" in message
    assert failure.value.operation == "start" and failure.value.platform == "local"
    assert "boom: DATABASE_URL is not set" in platform.release_log_tail("v1")
    assert platform.releases() == []


def test_release_that_never_listens_times_out_with_advice(platform_factory: Factory) -> None:
    platform = platform_factory(
        command=(sys.executable, "-c", "import time; print('warming up', flush=True); time.sleep(60)"),
        startup_timeout_seconds=0.5,
    )
    with pytest.raises(DeployError, match=r"did not accept connections on 127\.0\.0\.1:\d+ within 0\.5 s") as failure:
        platform.start("v1", None)
    assert "warming up" in str(failure.value)
    assert platform.releases() == []


def test_a_running_supervisor_on_another_address_is_reported(platform_factory: Factory) -> None:
    platform_factory().start("v1", None)
    moved = platform_factory(listen=f"127.0.0.1:{free_port()}")
    with pytest.raises(DeployError, match=r"set local\.listen back, or stop the supervisor"):
        moved.start("v1", None)


DEPLOY_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from orchestrator.contract import LocalConfig
    from orchestrator.platforms.local import LocalPlatform

    command = (sys.executable, "-m", "orchestrator.demo.app", "--port", "{port}", "--version", "{version}")
    config = LocalConfig(command=command, listen=sys.argv[1], state_dir=Path(sys.argv[2]))
    platform = LocalPlatform(config, Path.cwd())
    platform.start("v1", None)
    platform.route({"v1": 100})
    print("deployed v1")
    """
)


def test_deploy_from_a_process_with_captured_output_returns_promptly_and_keeps_serving(
    tmp_path: Path, platform_factory: Factory
) -> None:
    platform = platform_factory()  # owns the state dir and its cleanup
    script = tmp_path / "deploy.py"
    script.write_text(DEPLOY_SCRIPT)

    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script), platform._config.listen, str(platform.paths.root)],
        capture_output=True,
        timeout=30,
        cwd=tmp_path,
    )
    took = time.monotonic() - began

    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "deployed v1"
    assert took < 10, f"the deploying process took {took:.1f} s: something held its output pipes"
    # The orchestrator process has exited; the supervisor still serves v1.
    assert fetch_version(platform.live_url()) == "v1"
    status = read_status(platform.paths.root)
    assert status is not None
    assert os.getsid(status.pid) == status.pid, "the supervisor must lead its own session"


def test_supervisor_restart_readopts_running_releases_and_restarts_dead_ones(platform_factory: Factory) -> None:
    platform = platform_factory()
    v1 = platform.start("v1", None)
    v2 = platform.start("v2", None)
    platform.route({"v2": 100})
    before = read_status(platform.paths.root)
    assert before is not None
    pid_of = {r.version: r.pid for r in before.releases}

    # The proxy process first: it would relaunch the supervisor at once.
    os.kill(json.loads(platform.paths.proxy_pid.read_text())["pid"], signal.SIGKILL)
    os.kill(before.pid, signal.SIGKILL)
    wait_for(lambda: read_status(platform.paths.root) is None)
    os.killpg(pid_of["v1"], signal.SIGKILL)  # dies while nobody supervises it
    wait_for(lambda: not is_running(pid_of["v1"]))

    again = LocalPlatform(platform._config, platform._workspace)
    assert again.start("v2", None) == v2, "v2 was re-adopted, not restarted"
    after = read_status(platform.paths.root)
    assert after is not None and after.pid != before.pid
    assert after.weights == {"v2": 100}
    assert fetch_version(platform.live_url()) == "v2"
    wait_for(lambda: any(r.version == "v1" and r.alive for r in read_status(platform.paths.root).releases))  # type: ignore[union-attr]
    assert v1.url is not None
    wait_for(lambda: _answers(v1.url or ""))
    assert fetch_version(v1.url) == "v1", "v1 was restarted on its recorded port"


def _answers(url: str) -> bool:
    try:
        fetch_version(url)
    except (OSError, AssertionError):
        return False
    return True


def test_supervisor_restarts_a_release_that_dies(platform_factory: Factory) -> None:
    platform = platform_factory()
    platform.start("v1", None)
    platform.route({"v1": 100})
    status = read_status(platform.paths.root)
    assert status is not None
    old_pid = status.releases[0].pid

    os.killpg(old_pid, signal.SIGKILL)

    def restarted() -> bool:
        now = read_status(platform.paths.root)
        return now is not None and now.releases[0].pid != old_pid and now.releases[0].alive

    wait_for(restarted)
    wait_for(lambda: _answers(platform.live_url()))
    assert fetch_version(platform.live_url()) == "v1"


def test_status_and_stop_verbs(platform_factory: Factory) -> None:
    platform = platform_factory()
    config, workspace = platform._config, platform._workspace
    assert supervisor_status(config, workspace)["running"] is False
    platform.start("v1", None)
    platform.route({"v1": 100})
    platform.start("v2", None)

    shown = supervisor_status(config, workspace)
    json.dumps(shown)  # the CLI prints it as JSON
    assert shown["running"] is True and shown["live"] == "v1" and shown["listen"] == config.listen
    assert [(r["version"], r["weight"], r["alive"]) for r in shown["releases"]] == [("v2", 0, True), ("v1", 100, True)]
    pids = [r["pid"] for r in shown["releases"]] + [shown["pid"]]

    assert sorted(supervisor_stop(config, workspace)) == ["v1", "v2"]

    wait_for(lambda: not any(is_running(pid) for pid in pids))
    with pytest.raises(OSError):
        fetch_version(platform.live_url())
    assert supervisor_status(config, workspace) == {
        "running": False,
        "state_dir": str(platform.paths.root),
        "listen": config.listen,
        "live": None,
        "releases": [],
    }
    assert supervisor_stop(config, workspace) == []


def test_relative_state_dir_and_cwd_resolve_against_the_workspace(tmp_path: Path, platform_factory: Factory) -> None:
    (tmp_path / "app").mkdir()
    command = (*DEMO[:1], "-c", "import os, sys; print(os.getcwd()); sys.exit(1)")
    platform = platform_factory(name="rel", command=command, cwd=Path("app"), state_dir=Path("rel"))
    assert platform.paths.root == tmp_path / "rel"
    # cwd is the release's own copy of `app`, in its snapshot.
    with pytest.raises(DeployError, match=re.escape(str(tmp_path / "rel" / "releases" / "v1" / "app"))):
        platform.start("v1", None)
