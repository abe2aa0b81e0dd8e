"""The agent on a host holds what arrives to the digests it was sent with, before anything runs.

These drive the agent in this process, as the host's Python runs it (no SSH needed to hold it to that).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import orchestrator.demo.app
from orchestrator.platforms.hosts.agent import Agent, AgentError
from orchestrator.platforms.hosts.release_files import pack
from tests.peers.postgres import free_port
from tests.platforms.local.conftest import kill_leftovers


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    made = Agent(tmp_path / "host")
    made.op_configure(
        {
            "command": [sys.executable, "app.py", "--port", "{port}", "--version", "{version}"],
            "listen": f"127.0.0.1:{free_port()}",
            "cwd": None,
            "env": [],
            "replicas": 1,
            "drain_seconds": 0.5,
            "startup_timeout_seconds": 20,
            "proxy": "python",
            "max_connections": 100,
        },
        {"endpoint": "/health", "expected_status": 200, "timeout_seconds": 2, "retries": 20, "interval_seconds": 0.1},
    )
    yield made
    kill_leftovers(made.state)


def _release(tmp_path: Path, version: str) -> tuple[Path, str, str]:
    """A packed release (tarball uploaded into the agent's uploads), its sha256 and tree digest."""
    source = tmp_path / "app"
    source.mkdir(exist_ok=True)
    shutil.copy(orchestrator.demo.app.__file__, source / "app.py")
    files = pack(version, source=source, workspace=tmp_path, staging=tmp_path / "staging", approved=None)
    return files.tarball, files.sha256, files.tree_digest


def test_an_upload_that_is_not_what_was_sent_is_refused_and_removed(agent: Agent, tmp_path: Path) -> None:
    tarball, sha256, tree = _release(tmp_path, "v1")
    uploaded = agent.uploads / "v1.tar"
    shutil.copy(tarball, uploaded)
    with uploaded.open("ab") as f:
        f.write(b"\0" * 512)
    with pytest.raises(AgentError, match=f"release v1: the upload has sha256 [0-9a-f]{{64}}, not {sha256} as sent"):
        agent.op_start("v1", None, tree, tarball=str(uploaded), sha256=sha256)
    assert not uploaded.exists()
    assert not (agent.sources / "v1").exists()
    assert agent.op_status()["releases"] == []


def test_files_whose_tree_digest_differs_from_the_validated_one_never_serve(agent: Agent, tmp_path: Path) -> None:
    tarball, sha256, _tree = _release(tmp_path, "v1")
    uploaded = agent.uploads / "v1.tar"
    shutil.copy(tarball, uploaded)
    wrong = "sha256:" + "0" * 64
    with pytest.raises(AgentError, match=f"not {wrong} as validated; refusing to run them"):
        agent.op_start("v1", None, wrong, tarball=str(uploaded), sha256=sha256)
    assert agent.op_status()["live"] is None


def test_a_release_arrives_checked_and_healthy(agent: Agent, tmp_path: Path) -> None:
    tarball, sha256, tree = _release(tmp_path, "v1")
    shutil.copy(tarball, agent.uploads / "v1.tar")
    started = agent.op_start("v1", None, tree, tarball=str(agent.uploads / "v1.tar"), sha256=sha256)
    assert started["version"] == "v1"
    agent.op_route({"v1": 100}, commit=1)
    status = agent.op_status()
    assert (status["live"], status["record"]) == ("v1", {"generation": 1, "live": "v1"})
    assert status["releases"][0]["tree_digest"] == tree


def test_an_upload_reaching_outside_its_directory_is_refused(agent: Agent, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("../escaped")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"hi"))
    uploaded = agent.uploads / "v1.tar"
    uploaded.write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    with pytest.raises(AgentError, match="refused"):
        agent.op_start("v1", None, "sha256:" + "0" * 64, tarball=str(uploaded), sha256=digest)
    assert not (agent.sources.parent / "escaped").exists()
    assert not (agent.sources / "escaped").exists()


def _started(agent: Agent, tmp_path: Path, version: str) -> None:
    tarball, sha256, tree = _release(tmp_path, version)
    shutil.copy(tarball, agent.uploads / f"{version}.tar")
    agent.op_start(version, None, tree, tarball=str(agent.uploads / f"{version}.tar"), sha256=sha256)


def test_an_armed_switch_changes_nothing_until_it_fires(agent: Agent, tmp_path: Path) -> None:
    for version in ("v1", "v2"):
        _started(agent, tmp_path, version)
    agent.op_route({"v1": 100}, commit=1)

    assert agent.handle({"op": "arm", "weights": {"v2": 100}, "commit": 2}) == {"armed": True}
    status = agent.handle({"op": "status"})
    assert (status["live"], status["record"]) == ("v1", {"generation": 1, "live": "v1"})

    with pytest.raises(AgentError, match="no switch is armed on this host"):
        agent.handle({"op": "fire"})  # the status request called it off
    agent.handle({"op": "arm", "weights": {"v2": 100}, "commit": 2})
    fired = agent.handle({"op": "fire"})

    assert isinstance(fired["at"], float)
    status = agent.op_status()
    assert (status["live"], status["record"]) == ("v2", {"generation": 2, "live": "v2"})


def test_arming_a_release_that_does_not_run_here_is_refused_before_anything_switches(
    agent: Agent, tmp_path: Path
) -> None:
    _started(agent, tmp_path, "v1")
    agent.op_route({"v1": 100}, commit=1)
    with pytest.raises(ValueError, match="v9"):
        agent.handle({"op": "arm", "weights": {"v9": 100}, "commit": 2})
    assert agent.op_status()["live"] == "v1"


def test_a_rollback_arms_only_where_its_release_runs(agent: Agent, tmp_path: Path) -> None:
    _started(agent, tmp_path, "v1")
    agent.op_route({"v1": 100}, commit=1)
    assert agent.handle({"op": "arm_rollback", "version": "v1", "commit": 2}) == {"armed": True}
    agent.handle({"op": "disarm"})
    assert agent.handle({"op": "arm_rollback", "version": "v7", "commit": 2}) == {"armed": False}
