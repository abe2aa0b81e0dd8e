"""The whole Action on two Droplet groups behind a load balancer: the simulator's Droplets are real SSH
hosts, the real CLI and PostgreSQL, verification through the load balancer, rollback by moving it back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.artifacts import digest_artifacts
from orchestrator.cli import Execution, execute
from orchestrator.config import parse_config
from tests.peers.do_simulator import DoSimulator
from tests.peers.http import HttpPeer, Reply
from tests.peers.postgres import free_port
from tests.peers.ssh_hosts import Fleet
from tests.peers.verdicts import seed_passed
from tests.platforms.hosts.droplet_site import droplets_env
from tests.platforms.hosts.workspace import hosts_document, hosts_env
from tests.workspace import write_config

# Real SSH hosts: every run signs in to both groups' Droplets, installs and starts releases.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


class DropletsWorkspace:
    def __init__(self, root: Path, dsn: str, fleet: Fleet, sim: DoSimulator, agentbench: HttpPeer) -> None:
        self.root, self.dsn, self.sim, self.fleet = root, dsn, sim, fleet
        self.port = port = free_port()
        self.ids = {
            "blue": [sim.infra.seed_droplet("web-0", tags=("shop-blue",), public_ip=fleet.hosts[0].address)],
            "green": [
                sim.infra.seed_droplet(f"web-{i}", tags=("shop-green",), public_ip=fleet.hosts[i].address)
                for i in (1, 2)
            ],
        }
        # Its health check passes a Droplet added one second later (DigitalOcean's defaults: 30 s).
        self.lb = sim.infra.seed_load_balancer(
            "shop-lb", target_port=port, check_interval_seconds=1, healthy_threshold=1
        )
        self.config: dict[str, Any] = hosts_document(root, fleet, port, sim.infra.entry_url(self.lb))
        hosts = self.config["deployment_config"]["hosts"]
        del hosts["hosts"]
        hosts["droplets"] = {
            "blue_tag": "shop-blue",
            "green_tag": "shop-green",
            "load_balancer_id": self.lb,
            "root": str(fleet.directory / "{name}-root"),
        }
        self.config["agentbench_config"]["url"] = agentbench.url
        self.env = {
            **hosts_env(fleet, root),
            **droplets_env(sim, root, key=fleet.client_key),
            "DATABASE_URL": dsn,
            "AGENTBENCH_TOKEN": "agentbench-token",
            "GITHUB_OUTPUT": str(root / "github_output"),
            "GITHUB_STEP_SUMMARY": str(root / "summary.md"),
        }

    def prepare(self, version: str, **document: Any) -> None:
        """The config written and `version` validated."""
        config = {**json.loads(json.dumps(self.config)), **document}
        write_config(self.root, config)
        digests = digest_artifacts(parse_config(config, self.root).artifacts, self.root)
        seed_passed(self.dsn, f"run-{version}", digests)

    def deploy(self, version: str, **document: Any) -> Execution:
        self.prepare(version, **document)
        raw = {"config": "deploy.json", "version": version, "validation-run-id": f"run-{version}", "mode": "deploy"}
        return execute(raw, self.env)

    def behind(self) -> list[str]:
        members = set(self.sim.infra.members(self.lb))
        return [group for group, ids in self.ids.items() if members & set(ids)]

    def on_host(self, index: int) -> str:
        """What a Droplet's own proxy serves (bypassing the load balancer)."""
        host = self.fleet.hosts[index]
        return str(requests.get(f"http://{host.address}:{self.port}/version", timeout=10).json()["version"])

    def served(self) -> set[str]:
        url = self.sim.infra.entry_url(self.lb)
        return {str(requests.get(f"{url}/version", timeout=10).json()["version"]) for _ in range(6)}


@pytest.fixture
def ws(tmp_path: Path, pg_dsn: str, ssh_fleet: Fleet, http_peer: HttpPeer) -> Iterator[DropletsWorkspace]:
    http_peer.route("POST", "/api/dpo-pairs", Reply(201, {"submission_id": "sub-1"}))
    sim = DoSimulator()
    yield DropletsWorkspace(tmp_path, pg_dsn, ssh_fleet, sim, http_peer)
    sim.close()
    assert sim.violations == [], "\n".join(sim.violations)


def test_the_action_switches_the_load_balancer_and_a_failed_verification_moves_it_back(ws: DropletsWorkspace) -> None:
    first = ws.deploy("v1")
    assert first.exit_code == 0, first.result and first.result.error
    assert ws.behind() == ["blue"] and ws.served() == {"v1"}, "the first release goes to the blue Droplets"
    assert (
        f"switch plan: load balancer {ws.lb}: add Droplets {ws.ids['blue']} (blue), then wait 1 s for its health "
        "check to pass them"
    ) in _logs(first)

    with Load(ws.sim.infra.entry_url(ws.lb)) as load:
        second = ws.deploy("v2")
    assert second.exit_code == 0, second.result and second.result.error
    assert load.failed == [] and load.seen >= {"v1", "v2"}, "users never met a Droplet not yet passed"
    assert second.result is not None and second.result.deployment_details.previous_version == "v1"
    assert ws.behind() == ["green"] and ws.served() == {"v2"}
    assert [ws.on_host(i) for i in range(3)] == ["v1", "v2", "v2"], "blue keeps v1 running for a rollback"

    # v3 starts on the blue Droplets and takes the load balancer; users then get v3, not what the
    # verification expects, so the Action rolls back: the load balancer goes back to green (v2).
    verification = {"critical_endpoints": [{"path": "/version", "body_contains": '"v2"'}], "deadline_seconds": 5}
    failed = ws.deploy("v3", verification=verification)
    assert failed.exit_code == 1
    assert failed.result is not None and failed.result.status == "rolled_back", failed.result
    assert ws.behind() == ["green"] and ws.served() == {"v2"}
    blue, green = ws.ids["blue"], ws.ids["green"]
    assert [line for line in _logs(failed) if line.startswith("switch plan")] == [
        f"switch plan: load balancer {ws.lb}: add Droplets {blue} (blue), then wait 1 s for its health check to "
        f"pass them, then remove Droplets {green} (green)",
        f"switch plan: load balancer {ws.lb}: add Droplets {green} (green), then wait 1 s for its health check to "
        f"pass them, then remove Droplets {blue} (blue)",
    ]
    assert [ws.on_host(i) for i in range(3)] == ["v3", "v2", "v2"], "users never reach blue now"

    summary = (ws.root / "summary.md").read_text()
    assert ws.env["DEPLOY_SSH_KEY"].splitlines()[1] not in summary and ws.sim.token not in summary


class Load:
    """Requests through the load balancer, back to back, while the block runs: what users got."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.failed: list[str] = []
        self.seen: set[str] = set()

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    answer = session.get(f"{self._url}/version", timeout=10)
                    if answer.status_code != 200:
                        self.failed.append(f"{answer.status_code}: {answer.text[:200]}")
                    else:
                        self.seen.add(str(answer.json()["version"]))
                except requests.RequestException as exc:
                    self.failed.append(repr(exc))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def _logs(done: Execution) -> list[str]:
    assert done.result is not None
    return [entry.message for entry in done.result.logs]


def test_a_run_killed_mid_switch_is_put_back_by_the_next_run(ws: DropletsWorkspace) -> None:
    assert ws.deploy("v1").exit_code == 0
    ws.prepare("v2")
    armed = {"DEPLOY_ORCHESTRATOR_CRASH_TEST": "kill-this-process", "DEPLOY_ORCHESTRATOR_CRASH_AT": "mid-switch"}
    argv = ["--config", "deploy.json", "--version", "v2", "--validation-run-id", "run-v2"]
    with (ws.root / "killed.log").open("wb") as log:
        dying = subprocess.Popen(
            [sys.executable, "-c", "import sys; from orchestrator.cli import main; sys.exit(main())", *argv],
            cwd=ws.root,
            env={**os.environ, **ws.env, **armed},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        assert dying.wait(300) == -signal.SIGKILL, (ws.root / "killed.log").read_text()
    assert ws.behind() == ["blue", "green"], "killed between adding green and removing blue"

    after = ws.deploy("v3")

    assert after.exit_code == 0, after.result and after.result.error
    assert "the last switch was to the blue Droplets, but both groups serve: finishing it" in _logs(after)
    assert ws.behind() == ["green"] and ws.served() == {"v3"}
