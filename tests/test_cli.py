"""The Action's entry as the runner calls it: a process with INPUT_* variables, hyphens kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.workspace import base_config, write_config

ROOT = Path(__file__).resolve().parent.parent


def run_entrypoint(workspace: Path, inputs: dict[str, str], **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
    env.update({f"INPUT_{name.upper()}": value for name, value in inputs.items()})
    env.update({"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workspace)}, **extra_env)
    return subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py")], env=env, capture_output=True, text=True, timeout=60
    )


def test_bad_config_exits_2_with_every_problem_as_an_annotation(tmp_path: Path) -> None:
    config = base_config()
    config["health_check"]["retries"] = 0
    config["deployment_config"]["strategy"] = "big_bang"
    write_config(tmp_path, config)
    outputs = tmp_path / "out"
    done = run_entrypoint(tmp_path, {"config": "deploy.json", "version": "v1"}, GITHUB_OUTPUT=str(outputs))
    assert done.returncode == 2
    assert "::error title=invalid configuration::invalid configuration (2 problems):%0A" in done.stdout
    assert "deployment_config.strategy: 'big_bang' is not allowed" in done.stderr
    assert "health_check.retries: 0 is out of range" in done.stderr
    assert "status=failed" in outputs.read_text()
    assert not (tmp_path / ".deploy-orchestrator").exists()


def test_hyphenated_inputs_are_read_as_the_runner_sets_them(tmp_path: Path) -> None:
    write_config(tmp_path, base_config())
    done = run_entrypoint(
        tmp_path, {"config": "deploy.json", "version": "v1", "validation-run-id": "bad id with spaces"}
    )
    assert done.returncode == 2
    assert "validation-run-id: should be 1-128 characters" in done.stderr


def test_an_unavailable_platform_is_a_config_error_naming_the_others(tmp_path: Path) -> None:
    config = base_config()
    config["deployment_config"] = {
        "strategy": "blue_green",
        "platform": "kubernetes",
        "k8s_namespace": "shop",
        "k8s_deployment": "web",
    }
    write_config(tmp_path, config)
    done = run_entrypoint(tmp_path, {"config": "deploy.json", "version": "v1"})
    assert done.returncode == 2
    assert "deployment_config.platform: kubernetes is not available" in done.stderr


def test_secret_values_are_masked_for_the_runner_before_anything_prints(tmp_path: Path) -> None:
    config = base_config()
    config["health_check"]["retries"] = 0
    write_config(tmp_path, config)
    done = run_entrypoint(tmp_path, {"config": "deploy.json", "version": "v1", "github-token": "ghp_canary123456"})
    assert "::add-mask::ghp_canary123456" in done.stdout
    assert done.stdout.count("ghp_canary123456") == 1
    assert json.dumps("ghp_canary123456") not in done.stderr
