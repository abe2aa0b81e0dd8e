"""`deploy-orchestrator local status|stop` on a workspace where nothing was deployed yet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.workspace import base_config, write_config


def test_status_and_stop_read_only_the_local_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    document = base_config()
    document["artifacts"]["migrations"] = ["moved-away/"]  # broken elsewhere: stop must still work
    write_config(tmp_path, document)
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))

    assert main(["local", "status", "--config", "deploy.json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["running"], status["live"], status["releases"]) == (False, None, [])
    assert status["listen"] == document["deployment_config"]["local"]["listen"]

    assert main(["local", "stop", "--config", "deploy.json"]) == 0
    assert capsys.readouterr().out.strip() == "stopped"


def test_a_config_without_a_local_block_names_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    document = base_config()
    document["deployment_config"] = {"strategy": "blue_green", "platform": "digitalocean", "do_app_id": "a1"}
    write_config(tmp_path, document)
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))

    assert main(["local", "status", "--config", "deploy.json"]) == 2
    assert "deploy.json has no local platform block; pass --state-dir instead" in capsys.readouterr().err
