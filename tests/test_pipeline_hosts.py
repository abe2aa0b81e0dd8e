"""The whole Action, end to end, on the hosts platform: real SSH hosts, real PostgreSQL, the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.artifacts import digest_artifacts
from orchestrator.cli import Execution, execute
from orchestrator.config import parse_config
from tests.peers.http import HttpPeer, Reply
from tests.peers.postgres import free_port
from tests.peers.ssh_hosts import Fleet
from tests.peers.verdicts import seed_passed
from tests.platforms.hosts.workspace import hosts_document, hosts_env
from tests.workspace import write_config

ROOT = Path(__file__).resolve().parent.parent

# Real SSH hosts: every run signs in, installs and starts releases on three of them.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


class HostsWorkspace:
    def __init__(self, root: Path, dsn: str, fleet: Fleet, agentbench: HttpPeer) -> None:
        self.root, self.dsn, self.fleet = root, dsn, fleet
        self.port = free_port()
        self.front = fleet.start_front(self.port)
        self.config: dict[str, Any] = hosts_document(root, fleet, self.port, self.front.url)
        self.config["agentbench_config"]["url"] = agentbench.url
        self.env = {
            **hosts_env(fleet, root),
            "DATABASE_URL": dsn,
            "AGENTBENCH_TOKEN": "agentbench-token",
            "GITHUB_OUTPUT": str(root / "github_output"),
            "GITHUB_STEP_SUMMARY": str(root / "summary.md"),
        }

    def deploy(self, version: str, **deployment: Any) -> Execution:
        config = json.loads(json.dumps(self.config))
        config["deployment_config"].update(deployment)
        write_config(self.root, config)
        digests = digest_artifacts(parse_config(config, self.root).artifacts, self.root)
        seed_passed(self.dsn, f"run-{version}", digests)
        raw = {"config": "deploy.json", "version": version, "validation-run-id": f"run-{version}", "mode": "deploy"}
        return execute(raw, self.env)

    def on_host(self, index: int) -> str:
        host = self.fleet.hosts[index]
        return str(requests.get(f"http://{host.address}:{self.port}/version", timeout=10).json()["version"])


@pytest.fixture
def ws(tmp_path: Path, pg_dsn: str, ssh_fleet: Fleet, http_peer: HttpPeer) -> Iterator[HostsWorkspace]:
    http_peer.route("POST", "/api/dpo-pairs", Reply(201, {"submission_id": "sub-1"}))
    yield HostsWorkspace(tmp_path, pg_dsn, ssh_fleet, http_peer)


def test_deploys_through_the_action_switch_every_host(ws: HostsWorkspace) -> None:
    first = ws.deploy("v1")
    assert first.exit_code == 0, first.result and first.result.error
    second = ws.deploy("v2")
    assert second.exit_code == 0, second.result and second.result.error
    assert second.result is not None and second.result.deployment_details.previous_version == "v1"
    assert [ws.on_host(i) for i in range(3)] == ["v2", "v2", "v2"]
    assert ws.env["DEPLOY_SSH_KEY"].splitlines()[1] not in (ws.root / "summary.md").read_text()


def test_a_changed_host_key_is_a_gate_refusal_that_touches_nothing(ws: HostsWorkspace) -> None:
    assert ws.deploy("v1").exit_code == 0
    ws.fleet.hosts[2].replace_host_key()
    refused = ws.deploy("v2")
    assert refused.exit_code == 3
    assert refused.result is not None and refused.result.error is not None
    assert f"host {ws.fleet.hosts[2].address} presented host key" in refused.result.error
    assert [ws.on_host(i) for i in range(3)] == ["v1", "v1", "v1"]


def test_a_host_cut_off_mid_roll_is_named_and_the_next_run_reconciles_it(ws: HostsWorkspace) -> None:
    assert ws.deploy("v1").exit_code == 0
    lost = ws.fleet.hosts[1]

    def cut_when_the_first_host_moved() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if ws.on_host(0) == "v2":
                lost.cut_off()
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=cut_when_the_first_host_moved, daemon=True)
    watcher.start()
    # The pause after each step is the window the cut lands in, long before the next host moves.
    failed = ws.deploy("v2", strategy="rolling", rolling={"pause_seconds": 5})
    watcher.join(30)

    assert failed.exit_code == 1
    assert failed.result is not None and failed.result.error is not None
    assert f"not on {lost.address}, unreachable (lost in this run; left for the next run to reconcile)" in (
        failed.result.error
    )
    assert [ws.on_host(i) for i in (0, 2)] == ["v1", "v1"], "the moved host went back"

    lost.reconnect()
    again = ws.deploy("v3", strategy="rolling")
    assert again.exit_code == 0, again.result and again.result.error
    assert [ws.on_host(i) for i in range(3)] == ["v3", "v3", "v3"]


def _entrypoint(ws: HostsWorkspace, version: str, env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """The Action as the runner starts it, every temporary file it makes under `tmp`."""
    write_config(ws.root, ws.config)
    digests = digest_artifacts(parse_config(ws.config, ws.root).artifacts, ws.root)
    seed_passed(ws.dsn, f"run-{version}", digests)
    inputs = {"config": "deploy.json", "version": version, "validation-run-id": f"run-{version}"}
    process_env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
    process_env.update({f"INPUT_{name.upper()}": value for name, value in inputs.items()})
    process_env.update(env, GITHUB_ACTIONS="true", TMPDIR=str(tmp))
    return subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py")], env=process_env, capture_output=True, text=True, timeout=300
    )


def _files_holding(lines: list[str], *folders: Path, leave_out: tuple[Path, ...] = ()) -> list[Path]:
    found = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and path not in leave_out:
                text = path.read_bytes().decode(errors="replace")
                if any(line in text for line in lines):
                    found.append(path)
    return found


def test_the_ssh_key_is_nowhere_but_in_memory_when_a_deploy_fails(ws: HostsWorkspace, tmp_path_factory: Any) -> None:
    # A canary key the hosts do not accept: the sign-in fails after the key was read and used.
    canary_dir = tmp_path_factory.mktemp("canary")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(canary_dir / "key")], check=True)
    canary = (canary_dir / "key").read_text()
    (canary_dir / "key").unlink()
    tmp = tmp_path_factory.mktemp("tmpdir")
    refused = _entrypoint(ws, "v1", {**ws.env, "DEPLOY_SSH_KEY": canary}, tmp)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "the SSH key was refused for user root" in refused.stdout + refused.stderr

    # The real key, and a release that cannot start: the run signs in everywhere, then fails.
    ws.config["deployment_config"]["local"]["command"] = ["/usr/bin/python3", "-c", "raise SystemExit(3)"]
    failed = _entrypoint(ws, "v1", ws.env, tmp)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "starting v1 failed on" in failed.stdout + failed.stderr

    for key, run in ((canary, refused), (ws.fleet.client_key, failed)):
        # The first line of the base64 is the same in every unencrypted ed25519 key: the rest is this key's.
        body = [line for line in key.splitlines() if line and "PRIVATE KEY" not in line][1:]
        # `::add-mask::` lines are the runner's masking being told the secret (the runner never shows them).
        printed = [line for line in (run.stdout + run.stderr).splitlines() if not line.startswith("::add-mask::")]
        assert not [line for line in printed if any(part in line for part in body)]
        own_copy = (ws.fleet.directory / "client_key",)
        assert _files_holding(body, ws.root, tmp, ws.fleet.directory, leave_out=own_copy) == []
    for host in ws.fleet.hosts:
        for pid in host.pids():
            try:
                seen = Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            assert not any(line.encode() in seen for line in ws.fleet.client_key.splitlines()[1:-1])


def test_a_run_killed_between_two_hosts_switching_is_put_back_on_one_release_by_recovery(ws: HostsWorkspace) -> None:
    """The crash matrix on hosts: killed after the first host fired its switch to v2, the others armed
    (an armed host disarms when the run's session ends). Recovery returns every host to v1, verified."""
    assert ws.deploy("v1").exit_code == 0
    write_config(ws.root, ws.config)
    seed_passed(ws.dsn, "run-v2", digest_artifacts(parse_config(ws.config, ws.root).artifacts, ws.root))
    armed = {
        "DEPLOY_ORCHESTRATOR_CRASH_TEST": "kill-this-process",
        "DEPLOY_ORCHESTRATOR_CRASH_AT": "between-host-fires",
    }
    argv = ["--config", "deploy.json", "--version", "v2", "--validation-run-id", "run-v2"]
    with (ws.root / "killed.log").open("wb") as log:
        dying = subprocess.Popen(
            [sys.executable, "-c", "import sys; from orchestrator.cli import main; sys.exit(main())", *argv],
            cwd=ws.root,
            env={**os.environ, **ws.env, **armed},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        assert dying.wait(300) == -9, (ws.root / "killed.log").read_text()[-3000:]
    assert sorted(ws.on_host(i) for i in range(3)) == ["v1", "v1", "v2"], "one host had switched, two had not"

    recovered = execute({"config": "deploy.json", "mode": "recover"}, ws.env)

    assert recovered.exit_code == 0, recovered.result and recovered.result.error
    assert recovered.result is not None
    recovery = recovered.result.to_dict()["recovery"]
    assert recovery["verified"] and recovery["serving"] == "v1"
    assert [ws.on_host(i) for i in range(3)] == ["v1", "v1", "v1"]
