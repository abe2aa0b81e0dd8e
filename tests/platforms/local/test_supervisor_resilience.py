"""Regression tests, on real processes and loopback: previews keep secrets out, a failed restart keeps a
release with traffic, the restart monitor survives errors, and SIGTERM lets answers in flight finish."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.errors import DeployError
from orchestrator.platforms.local import LocalPlatform
from orchestrator.platforms.local.control import read_status
from orchestrator.platforms.local.process import process_start_ticks
from orchestrator.platforms.local.targets import config_for
from orchestrator.platforms.registry import Target
from orchestrator.preview import deploy_preview
from tests.platforms.local.conftest import DEMO, kill_leftovers

Factory = Callable[..., LocalPlatform]

SECRET_NAME = "ORCH_TEST_SECRET_TOKEN"
SECRET_VALUE = "s3cr3t-value-never-for-pr-code"


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def is_running(pid: int) -> bool:
    return process_start_ticks(pid) is not None


def get(url: str, path: str = "/version", timeout: float = 5.0) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def answers_with(url: str, version: str) -> bool:
    try:
        status, body = get(url)
    except OSError:
        return False
    return status == 200 and json.loads(body)["version"] == version


def wrapped(script: str) -> tuple[str, ...]:
    """The demo app behind `sh -c script`; the script ends with `exec "$@"` to become the app."""
    return ("sh", "-c", script, "release", *DEMO)


def supervisor_pid(platform: LocalPlatform) -> int:
    status = read_status(platform.paths.root)
    assert status is not None
    return status.pid


# --- 1. previews withhold the orchestrator's secrets ------------------------------------------------


def test_preview_releases_never_see_withheld_secrets(
    tmp_path: Path, platform_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_NAME, SECRET_VALUE)
    monkeypatch.setenv("ORCH_TEST_HARMLESS", "visible")
    dump = tmp_path / "preview-env.json"
    save_env = "import json,os,sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"
    command = wrapped(f'"{sys.executable}" -c "{save_env}" "{dump}" && exec "$@"')
    base = platform_factory(command=command)
    target = Target.preview(7, "o/r")
    preview_config = config_for(base._config, base._workspace, target)
    platform = LocalPlatform(preview_config, base._workspace, withheld=frozenset({SECRET_NAME}), target=target)
    preview_dir = base.paths.root / "previews" / "pr-7"
    assert platform.paths.root == preview_dir
    try:
        release = deploy_preview(platform, "pr7-abc", None)
        assert answers_with(release.url or "", "pr7-abc")
        env = json.loads(dump.read_text())
        assert env.get("ORCH_TEST_HARMLESS") == "visible", "the dump must come from the preview release"
        assert SECRET_NAME not in env
        assert SECRET_VALUE not in json.dumps(env)
    finally:
        platform.remove()
        kill_leftovers(preview_dir)


# --- 2. a failed restart of a release with traffic keeps it -----------------------------------------


def test_failed_restart_of_a_live_release_keeps_it_and_recovers(tmp_path: Path, platform_factory: Factory) -> None:
    broken = tmp_path / "broken"
    # Exits at once while `broken` exists; otherwise becomes the demo app.
    command = wrapped(f'if [ -e "{broken}" ]; then echo broken >&2; exit 3; fi; exec "$@"')
    platform = platform_factory(command=command)
    platform.start("v1", None)
    platform.route({"v1": 100})
    assert answers_with(platform.live_url(), "v1")
    status = read_status(platform.paths.root)
    assert status is not None
    old = status.releases[0]

    broken.touch()
    os.killpg(old.pid, signal.SIGKILL)
    wait_for(lambda: not is_running(old.pid))

    # The monitor may be retrying too; a start that saw one of its short-lived retries alive just succeeds.
    for _ in range(20):
        try:
            platform.start("v1", None)
        except DeployError as exc:
            assert "exited with code 3" in str(exc)
            break
        time.sleep(0.05)
    else:
        pytest.fail("starting v1 again never failed while its command was broken")

    after = read_status(platform.paths.root)
    assert after is not None
    assert after.weights == {"v1": 100}
    assert [r.version for r in after.releases] == ["v1"], "a release with traffic must never be forgotten"
    assert after.releases[0].port == old.port, "the record the proxy routes to is kept"
    saved = json.loads(platform.paths.state.read_text())
    assert [r["version"] for r in saved["releases"]] == ["v1"]

    broken.unlink()
    # The monitor goes on restarting it (backoff of at most a few seconds here) on the port the proxy uses.
    wait_for(lambda: answers_with(platform.live_url(), "v1"), timeout=20)


def test_failed_first_start_is_still_forgotten(tmp_path: Path, platform_factory: Factory) -> None:
    crash = (sys.executable, "-c", "import sys; sys.exit(3)")
    platform = platform_factory(command=crash)
    with pytest.raises(DeployError):
        platform.start("v1", None)
    assert platform.releases() == []


# --- 3. the restart monitor survives an unexpected error --------------------------------------------


def test_monitor_keeps_restarting_after_an_error_saving_state(platform_factory: Factory) -> None:
    platform = platform_factory()
    platform.start("v1", None)
    platform.route({"v1": 100})
    first = read_status(platform.paths.root)
    assert first is not None
    pid1 = first.releases[0].pid

    # A directory where the state's temporary file goes: saving the state raises IsADirectoryError.
    blocker = platform.paths.state.with_suffix(".json.tmp")
    blocker.mkdir()
    try:
        os.killpg(pid1, signal.SIGKILL)
        wait_for(lambda: _alive_pid(platform) not in (None, pid1))
        pid2 = _alive_pid(platform)
        assert pid2 is not None
        # Still failing to save: the monitor must survive this round too.
        os.killpg(pid2, signal.SIGKILL)
        wait_for(lambda: _alive_pid(platform) not in (None, pid2))
    finally:
        blocker.rmdir()
    pid3 = _alive_pid(platform)
    assert pid3 is not None
    os.killpg(pid3, signal.SIGKILL)
    wait_for(lambda: _alive_pid(platform) not in (None, pid3))
    wait_for(lambda: answers_with(platform.live_url(), "v1"))
    log = platform.paths.supervisor_log.read_text()
    assert "monitor: checking replicas failed" in log


def _alive_pid(platform: LocalPlatform) -> int | None:
    status = read_status(platform.paths.root)
    assert status is not None
    release = status.releases[0]
    return release.pid if release.alive else None


# --- 4. SIGTERM lets the requests in flight finish --------------------------------------------------


def test_sigterm_finishes_requests_in_flight_then_exits_leaving_releases_running(platform_factory: Factory) -> None:
    platform = platform_factory()
    v1 = platform.start("v1", None)
    platform.route({"v1": 100})
    status = read_status(platform.paths.root)
    assert status is not None
    release_pid = status.releases[0].pid
    pid = status.pid
    host, port = platform.live_url().removeprefix("http://").split(":")
    slow = http.client.HTTPConnection(host, int(port), timeout=10)
    slow.request("GET", "/slow?ms=1500")
    time.sleep(0.3)

    os.kill(pid, signal.SIGTERM)

    # It stops accepting at once, while the slow answer is still on its way.
    wait_for(lambda: not _accepts(host, int(port)), timeout=2)
    assert is_running(pid), "the supervisor waits for the request in flight"
    response = slow.getresponse()
    assert response.status == 200
    assert json.loads(response.read()) == {"version": "v1", "slow": True}
    wait_for(lambda: not is_running(pid))
    assert is_running(release_pid), "SIGTERM ends the supervisor alone"
    assert answers_with(v1.url or "", "v1")


def test_sigterm_without_requests_in_flight_exits_promptly(platform_factory: Factory) -> None:
    platform = platform_factory()
    platform.start("v1", None)
    platform.route({"v1": 100})
    assert answers_with(platform.live_url(), "v1")
    pid = supervisor_pid(platform)
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not is_running(pid), timeout=5)
    assert time.monotonic() - started < 3


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
