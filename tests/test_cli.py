"""The Action's entry as the runner calls it: a process with INPUT_* variables, hyphens kept."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.workspace import base_config, write_config

ROOT = Path(__file__).resolve().parent.parent


def run_entrypoint(
    workspace: Path, inputs: dict[str, str], *, args: list[str] | None = None, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
    env.update({f"INPUT_{name.upper()}": value for name, value in inputs.items()})
    env.update({"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workspace)}, **extra_env)
    return subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py"), *(args or [])],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
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


def test_a_platform_without_its_credentials_is_a_config_error_naming_the_variable(tmp_path: Path) -> None:
    config = base_config()
    config["deployment_config"] = {
        "strategy": "blue_green",
        "platform": "kubernetes",
        "k8s_namespace": "shop",
        "k8s_deployment": "web",
    }
    config["credentials"]["k8s_kubeconfig_env_var"] = "KUBECONFIG_CONTENT"
    write_config(tmp_path, config)
    done = run_entrypoint(tmp_path, {"config": "deploy.json", "version": "v1"})
    assert done.returncode == 2
    assert "KUBECONFIG_CONTENT" in done.stderr
    assert not (tmp_path / ".deploy-orchestrator").exists()


def test_secret_values_are_masked_for_the_runner_before_anything_prints(tmp_path: Path) -> None:
    config = base_config()
    config["health_check"]["retries"] = 0
    write_config(tmp_path, config)
    done = run_entrypoint(tmp_path, {"config": "deploy.json", "version": "v1", "github-token": "ghp_canary123456"})
    assert "::add-mask::ghp_canary123456" in done.stdout
    assert done.stdout.count("ghp_canary123456") == 1
    assert json.dumps("ghp_canary123456") not in done.stderr


def test_phases_fold_in_the_job_log_and_never_nest(tmp_path: Path, pg_dsn: str) -> None:
    from orchestrator.artifacts import digest_artifacts
    from orchestrator.config import parse_config
    from tests.peers.verdicts import seed_passed

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        config = base_config(int(s.getsockname()[1]))
    write_config(tmp_path, config)
    seed_passed(pg_dsn, "run-1", digest_artifacts(parse_config(config, tmp_path).artifacts, tmp_path))
    done = run_entrypoint(
        tmp_path, {"config": "deploy.json", "version": "v1", "validation-run-id": "run-1"}, DATABASE_URL=pg_dsn
    )
    try:
        groups = [line for line in done.stdout.splitlines() if line.startswith(("::group::", "::endgroup::"))]
        assert done.returncode == 0, done.stderr
        assert groups[0] == "::group::Gates"
        assert "::group::Rollout: blue_green to v1" in groups
        assert groups[-2:] == ["::group::Record", "::endgroup::"]
        depth = 0
        for line in groups:
            depth += 1 if line.startswith("::group::") else -1
            assert depth in (0, 1)
    finally:
        from orchestrator.config import parse_config as parse
        from orchestrator.platforms.local import supervisor_stop

        local = parse(config, tmp_path).deployment.local
        assert local is not None
        supervisor_stop(local, tmp_path)


def test_migrations_without_a_database_dsn_exit_2_before_anything(tmp_path: Path) -> None:
    config = base_config()
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "V1__a.sql").write_text("CREATE TABLE a (id int);\n")
    config["artifacts"]["migrations"] = ["db"]
    write_config(tmp_path, config)
    done = run_entrypoint(tmp_path, {"config": "deploy.json", "version": "v1", "validation-run-id": "r1"})
    assert done.returncode == 2
    assert "credentials.db_connection_env_var: migrations are listed but $DATABASE_URL is not set" in done.stderr
    assert not (tmp_path / ".deploy-orchestrator").exists()


def test_a_bad_config_writes_a_step_summary_listing_every_problem(tmp_path: Path) -> None:
    config = base_config()
    config["health_check"]["retries"] = 0
    config["deployment_config"]["strategy"] = "big_bang"
    write_config(tmp_path, config)
    summary = tmp_path / "summary.md"
    done = run_entrypoint(tmp_path, {"config": "deploy.json", "version": "v1"}, GITHUB_STEP_SUMMARY=str(summary))
    assert done.returncode == 2
    text = summary.read_text()
    assert "invalid configuration" in text and "Nothing was touched" in text
    assert "deployment_config.strategy: 'big_bang' is not allowed" in text
    assert "health_check.retries: 0 is out of range" in text


def test_a_gate_refusal_is_annotated_as_refused_by_gate_not_as_a_failed_deploy(tmp_path: Path, pg_dsn: str) -> None:
    write_config(tmp_path, base_config())
    done = run_entrypoint(tmp_path, {"config": "deploy.json", "version": "v1"}, DATABASE_URL=pg_dsn)
    assert done.returncode == 3
    assert "::error title=refused by gate::" in done.stdout
    assert "title=deploy failed" not in done.stdout


def test_a_refusal_is_logged_once_under_its_gate_without_a_doubled_prefix(tmp_path: Path, pg_dsn: str) -> None:
    write_config(tmp_path, base_config())
    done = run_entrypoint(tmp_path, {"config": "deploy.json", "version": "v1"}, DATABASE_URL=pg_dsn)
    assert done.returncode == 3
    assert "refused by the validation gate: no validation run id" in done.stderr
    assert "gate validation: gate validation" not in done.stderr
    assert "refused by the validation gate: gate validation:" not in done.stderr
