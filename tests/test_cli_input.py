"""The command line: tokens only from the environment, bad flags exit 2, unwritable outputs reported once."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from orchestrator.cli import EXIT_OUTPUTS_UNWRITTEN, raw_inputs
from orchestrator.errors import ConfigError
from tests.test_cli import run_entrypoint
from tests.workspace import base_config, write_config


@pytest.mark.parametrize("args", [["--github-token", "ghp_flagcanary77"], ["--github-token=ghp_flagcanary77"]])
def test_a_token_flag_is_refused_naming_the_variable_to_set(tmp_path: Path, args: list[str]) -> None:
    write_config(tmp_path, base_config())
    done = run_entrypoint(tmp_path, {"config": "deploy.json", "version": "v1"}, args=args)
    assert done.returncode == 2
    assert "--github-token: tokens are not taken on the command line" in done.stderr
    assert "set GITHUB_TOKEN in the environment instead (in a workflow: the github-token input)" in done.stderr
    assert "ghp_flagcanary77" not in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_the_token_comes_from_the_action_input_or_github_token() -> None:
    assert raw_inputs([], {"GITHUB_TOKEN": "from-env"})["github-token"] == "from-env"
    assert raw_inputs([], {"GITHUB_TOKEN": "from-env", "INPUT_GITHUB-TOKEN": "input"})["github-token"] == "input"
    assert "github-token" not in raw_inputs([], {})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nope"], "command line: unrecognized arguments: --nope; see --help"),
        (["--conf", "x"], "command line: unrecognized arguments: --conf x; see --help"),
        (["--mode"], "command line: argument --mode: expected one argument; see --help"),
    ],
)
def test_bad_flags_are_config_errors(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        raw_inputs(args, {})
    assert caught.value.problems == (message,)


def test_a_bad_config_with_an_unwritable_output_still_exits_2_and_says_why_once(tmp_path: Path) -> None:
    config = base_config()
    config["health_check"]["retries"] = 0
    write_config(tmp_path, config)
    done = run_entrypoint(tmp_path, {"config": "deploy.json", "version": "v1"}, GITHUB_OUTPUT="/dev/full")
    assert done.returncode == 2
    assert done.stdout.count("::error title=outputs not written::") == 1
    assert (
        "::error title=outputs not written::outputs not written: cannot write GITHUB_OUTPUT (/dev/full): "
        "No space left on device" in done.stdout
    )
    assert "health_check.retries: 0 is out of range" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_an_output_path_in_a_missing_folder_is_reported_not_created(tmp_path: Path) -> None:
    write_config(tmp_path, base_config())
    target = tmp_path / "no-such-dir" / "out"
    done = run_entrypoint(tmp_path, {"config": "deploy.json", "mode": "yolo"}, GITHUB_OUTPUT=str(target))
    assert done.returncode == 2
    assert f"cannot write GITHUB_OUTPUT ({target}): No such file or directory" in done.stdout
    assert not target.parent.exists()


def test_a_successful_deploy_whose_outputs_cannot_be_written_says_it_succeeded(tmp_path: Path, pg_dsn: str) -> None:
    from orchestrator.artifacts import digest_artifacts
    from orchestrator.config import parse_config
    from orchestrator.platforms.local import supervisor_stop
    from tests.peers.verdicts import seed_passed

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        config = base_config(int(s.getsockname()[1]))
    write_config(tmp_path, config)
    seed_passed(pg_dsn, "run-1", digest_artifacts(parse_config(config, tmp_path).artifacts, tmp_path))
    summary = tmp_path / "missing" / "summary.md"
    try:
        done = run_entrypoint(
            tmp_path,
            {"config": "deploy.json", "version": "v1", "validation-run-id": "run-1"},
            DATABASE_URL=pg_dsn,
            GITHUB_OUTPUT="/dev/full",
            GITHUB_STEP_SUMMARY=str(summary),
        )
        assert done.returncode == EXIT_OUTPUTS_UNWRITTEN, done.stderr
        (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("::error title=outputs not written::")]
        assert "the deploy succeeded (v1 is live at http://127.0.0.1:" in line
        assert f"cannot write GITHUB_STEP_SUMMARY ({summary}): No such file or directory" in line
        assert "cannot write GITHUB_OUTPUT (/dev/full): No space left on device" in line
        assert f"The step fails (exit {EXIT_OUTPUTS_UNWRITTEN}) so that later steps do not read missing outputs" in line
        assert (tmp_path / ".deploy-orchestrator" / "result.json").is_file()
        assert "Traceback" not in done.stdout + done.stderr
    finally:
        local = parse_config(config, tmp_path).deployment.local
        assert local is not None
        supervisor_stop(local, tmp_path)


def test_secrets_the_config_names_are_masked_even_in_errors_before_validation(tmp_path: Path) -> None:
    config = base_config()
    config["health_check"]["retries"] = 0  # the config is invalid too: secrets are registered before validation
    write_config(tmp_path, config)
    done = run_entrypoint(
        tmp_path, {"config": "deploy.json", "mode": "tok-early-canary-41"}, AGENTBENCH_TOKEN="tok-early-canary-41"
    )
    assert done.returncode == 2
    assert "mode: '***' is not a mode" in done.stderr
    assert "tok-early-canary-41" not in done.stderr
    assert [ln for ln in done.stdout.splitlines() if "tok-early-canary-41" in ln] == ["::add-mask::tok-early-canary-41"]


def test_a_secret_quoted_back_by_the_argument_parser_is_masked(tmp_path: Path) -> None:
    write_config(tmp_path, base_config())
    done = run_entrypoint(
        tmp_path,
        {"config": "deploy.json"},
        args=["tok-argv-canary-83"],
        AGENTBENCH_TOKEN="tok-argv-canary-83",
    )
    assert done.returncode == 2
    assert "command line: unrecognized arguments: ***; see --help" in done.stderr
    assert "tok-argv-canary-83" not in done.stderr
