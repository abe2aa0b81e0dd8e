"""Releases with several replicas, end to end: a real supervisor, real demo processes, real sockets."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import DeployError
from orchestrator.platforms.local import LocalPlatform, ReplicaStatus, read_status, supervisor_status
from orchestrator.platforms.local.process import process_start_ticks
from tests.platforms.local.conftest import DEMO, free_port

Factory = Callable[..., LocalPlatform]


def whoami(conn: http.client.HTTPConnection) -> dict[str, Any]:
    conn.request("GET", "/whoami")
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, body
    answer: dict[str, Any] = json.loads(body)
    return answer


def connect(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=5)


def public_port(platform: LocalPlatform) -> int:
    return int(platform.live_url().rsplit(":", 1)[1])


def replicas_of(platform: LocalPlatform, version: str) -> tuple[ReplicaStatus, ...]:
    status = read_status(platform.paths.root)
    assert status is not None
    return next(r.replicas for r in status.releases if r.version == version)


def is_running(pid: int) -> bool:
    return process_start_ticks(pid) is not None


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_release_with_three_replicas_runs_three_processes_on_three_ports(platform_factory: Factory) -> None:
    platform = platform_factory(replicas=3)

    release = platform.start("v1", None)

    replicas = replicas_of(platform, "v1")
    assert [r.index for r in replicas] == [0, 1, 2]
    assert len({r.port for r in replicas}) == 3 and len({r.pid for r in replicas}) == 3
    assert all(r.alive and is_running(r.pid) for r in replicas)
    for replica in replicas:
        assert os.getsid(replica.pid) == replica.pid, "each replica leads its own session"
        answer = whoami(connect(replica.port))
        assert answer == {"version": "v1", "port": replica.port, "pid": replica.pid}
    assert release.url == f"http://127.0.0.1:{replicas[0].port}", "the direct address is replica 0's"
    assert release.ref == f"pid:{replicas[0].pid}"
    assert platform.start("v1", None) == release, "start stays idempotent"

    shown = supervisor_status(platform._config, platform._workspace)
    json.dumps(shown)
    assert [(r["port"], r["pid"], r["alive"]) for r in shown["releases"][0]["replicas"]] == [
        (r.port, r.pid, True) for r in replicas
    ]


def test_requests_through_the_proxy_are_spread_across_the_replicas(platform_factory: Factory) -> None:
    platform = platform_factory(replicas=3)
    platform.start("v1", None)
    platform.route({"v1": 100})
    conn = connect(public_port(platform))

    seen = Counter(whoami(conn)["port"] for _ in range(30))

    assert seen == dict.fromkeys((r.port for r in replicas_of(platform, "v1")), 10)


class Load:
    """Keep-alive clients hitting /whoami without pause and without retrying; every failure is kept."""

    def __init__(self, port: int, clients: int = 6) -> None:
        self.port = port
        self.answers: list[tuple[float, int]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        conn = connect(self.port)
        while not self._stop.is_set():
            try:
                port = int(whoami(conn)["port"])
            except (OSError, http.client.HTTPException, AssertionError) as exc:
                with self._lock:
                    self.failures.append(repr(exc))
                conn.close()
                conn = connect(self.port)
                continue
            with self._lock:
                self.answers.append((time.monotonic(), port))
        conn.close()

    def served_by(self, port: int, since: float) -> bool:
        with self._lock:
            return any(at >= since and served == port for at, served in self.answers)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def test_killing_a_replica_under_keepalive_load_fails_no_request_and_the_supervisor_restarts_it(
    platform_factory: Factory,
) -> None:
    platform = platform_factory(replicas=3)
    platform.start("v1", None)
    platform.route({"v1": 100})
    victim = replicas_of(platform, "v1")[1]
    load = Load(public_port(platform))
    try:
        wait_for(lambda: load.served_by(victim.port, 0.0))
        time.sleep(0.3)
        killed_at = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)

        def restarted() -> bool:
            now = replicas_of(platform, "v1")[1]
            return now.alive and now.pid != victim.pid and now.port == victim.port

        wait_for(restarted)
        restarted_at = time.monotonic()
        wait_for(lambda: load.served_by(victim.port, restarted_at))
    finally:
        load.stop()

    assert load.failures == []
    after_kill = [port for at, port in load.answers if at > killed_at]
    assert len(after_kill) > 100, "the load kept running through the kill and the restart"
    assert not is_running(victim.pid)


def test_a_supervisor_restart_readopts_every_replica(platform_factory: Factory) -> None:
    platform = platform_factory(replicas=3)
    release = platform.start("v1", None)
    platform.route({"v1": 100})
    before = read_status(platform.paths.root)
    assert before is not None
    replicas = replicas_of(platform, "v1")

    # The proxy process first: it would relaunch the supervisor at once.
    os.kill(json.loads(platform.paths.proxy_pid.read_text())["pid"], signal.SIGKILL)
    os.kill(before.pid, signal.SIGKILL)
    wait_for(lambda: read_status(platform.paths.root) is None)
    again = LocalPlatform(platform._config, platform._workspace)

    assert again.start("v1", None) == release
    after = read_status(platform.paths.root)
    assert after is not None and after.pid != before.pid and after.weights == {"v1": 100}
    # The processes, not their last health probe: the new supervisor probes on its own schedule.
    processes = [(r.index, r.port, r.pid, r.alive) for r in replicas]
    assert [(r.index, r.port, r.pid, r.alive) for r in replicas_of(platform, "v1")] == processes, (
        "same processes on the same ports, none restarted"
    )
    conn = connect(public_port(platform))
    assert Counter(whoami(conn)["pid"] for _ in range(9)) == {r.pid: 3 for r in replicas}


def test_a_release_recorded_by_a_single_process_supervisor_is_readopted(
    tmp_path: Path, platform_factory: Factory
) -> None:
    platform = platform_factory()
    port = free_port()
    argv = [arg.replace("{port}", str(port)).replace("{version}", "v1") for arg in DEMO]
    running = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    assert running.stderr is not None and b"listening" in running.stderr.readline()
    platform.paths.root.mkdir(parents=True)
    # What the supervisor wrote before releases had replicas: format 1, the process inline.
    old = {
        "format": 1,
        "listen": platform._config.listen,
        "live": "v1",
        "next_seq": 2,
        "weights": {"v1": 100},
        "releases": [
            {
                "version": "v1",
                "port": port,
                "argv": argv,
                "cwd": str(tmp_path),
                "env": [],
                "seq": 1,
                "started_at": time.time(),
                "startup_timeout": 10.0,
                "pid": running.pid,
                "pid_start": process_start_ticks(running.pid),
                "image": None,
            }
        ],
    }
    platform.paths.state.write_text(json.dumps(old, indent=1))
    try:
        assert [r.url for r in platform.releases()] == [f"http://127.0.0.1:{port}"], "read without a supervisor"

        release = platform.start("v1", None)

        assert release.ref == f"pid:{running.pid}", "re-adopted, not restarted"
        assert [(r.index, r.port, r.pid, r.alive) for r in replicas_of(platform, "v1")] == [
            (0, port, running.pid, True)
        ]
        assert whoami(connect(public_port(platform)))["pid"] == running.pid
        platform.route({"v1": 100})
        saved = json.loads(platform.paths.state.read_text())
        assert saved["format"] == 4 and saved["releases"][0]["replicas"][0]["pid"] == running.pid
    finally:
        running.kill()
        running.wait()


def test_the_log_tail_covers_every_replica(platform_factory: Factory) -> None:
    platform = platform_factory(replicas=2)
    platform.start("v1", None)
    ports = [r.port for r in replicas_of(platform, "v1")]

    tail = platform.release_log_tail("v1")

    first, second = tail.split("==> v1@1.log <==\n")
    assert first.startswith("==> v1.log <==\n")
    assert f"demo v1 listening on 127.0.0.1:{ports[0]}" in first
    assert f"demo v1 listening on 127.0.0.1:{ports[1]}" in second


CRASH_ONE = textwrap.dedent(
    """
    import os, runpy, sys, time
    pids, port = sys.argv[1], sys.argv[2]
    open(os.path.join(pids, str(os.getpid())), "w").close()
    try:
        os.close(os.open(os.path.join(pids, "crashed"), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        sys.argv = ["app", "--port", port, "--version", "v1"]
        runpy.run_module("orchestrator.demo.app", run_name="__main__")
    else:
        # Give up once every replica has recorded its pid, so the test can see them all stopped.
        deadline = time.monotonic() + 5
        while sum(name.isdigit() for name in os.listdir(pids)) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        print("this replica gives up", flush=True)
        sys.exit(3)
    """
)


def test_a_replica_that_fails_to_start_fails_the_start_and_stops_the_others(
    tmp_path: Path, platform_factory: Factory
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    platform = platform_factory(command=(sys.executable, "-c", CRASH_ONE, str(pids), "{port}"), replicas=3)

    with pytest.raises(DeployError, match=r"release v1 replica \d exited with code 3 during startup") as failure:
        platform.start("v1", None)

    assert "this replica gives up" in str(failure.value)
    assert platform.releases() == []
    started = [int(p.name) for p in pids.iterdir() if p.name.isdigit()]
    assert len(started) == 3
    wait_for(lambda: not any(is_running(pid) for pid in started))
    assert "this replica gives up" in platform.release_log_tail("v1")


def test_retire_stops_every_replica_of_a_retired_release(platform_factory: Factory) -> None:
    platform = platform_factory(replicas=2)
    platform.start("v1", None)
    platform.start("v2", None)
    platform.route({"v2": 100})
    old, new = replicas_of(platform, "v1"), replicas_of(platform, "v2")

    assert platform.retire(0) == ["v1"]

    wait_for(lambda: not any(is_running(r.pid) for r in old))
    assert all(is_running(r.pid) for r in new)
