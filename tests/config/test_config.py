"""Bad input: every problem named with its field path and the fix; exit 2; nothing touched."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config import load_request, parse_config, read_config_file
from orchestrator.errors import ConfigError
from tests.workspace import base_config, write_config


def problems_of(config: dict[str, Any], workspace: Path) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config, workspace)
    return caught.value.problems


def test_the_base_config_is_valid(tmp_path: Path) -> None:
    cfg = parse_config(base_config(), tmp_path)
    assert cfg.deployment.strategy == "blue_green"
    assert cfg.deployment.local is not None
    assert cfg.deployment.local.command[-1] == "{version}"
    assert cfg.health_check.interval_seconds == 0.2


def test_every_problem_is_reported_at_once_with_its_path(tmp_path: Path) -> None:
    config = base_config()
    del config["deployment_config"]["strategy"]
    config["health_check"]["retries"] = 0
    config["health_check"]["timeout_seconds"] = -1
    config["rollback_config"]["keep_previous_version"] = 3
    assert problems_of(config, tmp_path) == (
        "deployment_config.strategy: required field is missing; add it",
        "health_check.retries: 0 is out of range; should be from 1 to 1000",
        "health_check.timeout_seconds: -1 is out of range; should be greater than 0 to 86400",
        "rollback_config.keep_previous_version: unknown field; remove it (did you mean 'keep_previous_versions'?)",
    )


def test_unknown_strategy_and_platform_name_the_choices(tmp_path: Path) -> None:
    config = base_config()
    config["deployment_config"]["strategy"] = "big_bang"
    config["deployment_config"]["platform"] = "heroku"
    assert problems_of(config, tmp_path) == (
        "deployment_config.platform: 'heroku' is not allowed; use one of local, digitalocean, kubernetes, hosts",
        "deployment_config.strategy: 'big_bang' is not allowed; use one of blue_green, canary, rolling",
    )


def test_a_strategy_the_platform_cannot_do_names_the_alternatives(tmp_path: Path) -> None:
    config = base_config()
    config["deployment_config"] = {"strategy": "canary", "platform": "digitalocean", "do_app_id": "app-1"}
    assert problems_of(config, tmp_path) == (
        "deployment_config.strategy: canary is not possible on digitalocean; use blue_green, rolling there, "
        "or platform local, kubernetes, hosts for canary",
    )


def test_wrong_types_are_named(tmp_path: Path) -> None:
    config = base_config()
    config["health_check"]["expected_status"] = "200"
    config["rollback_config"]["auto_rollback_on_failure"] = "yes"
    assert problems_of(config, tmp_path) == (
        "health_check.expected_status: should be a whole number, got str '200'",
        "rollback_config.auto_rollback_on_failure: should be true or false, got str 'yes'",
    )


@pytest.mark.parametrize("endpoint", ["ftp://example.org/health", "file:///etc/passwd", "health"])
def test_a_health_endpoint_must_be_a_path_or_http_url(tmp_path: Path, endpoint: str) -> None:
    config = base_config()
    config["health_check"]["endpoint"] = endpoint
    (problem,) = problems_of(config, tmp_path)
    assert problem.startswith(f"health_check.endpoint: {endpoint!r} should be a path such as /health")


def test_paths_outside_the_workspace_are_refused(tmp_path: Path) -> None:
    config = base_config()
    config["artifacts"]["migrations"] = ["../outside.sql"]
    config["deployment_config"]["local"]["state_dir"] = "/tmp/elsewhere"
    problems = problems_of(config, tmp_path)
    assert any(p.startswith("artifacts.migrations[0]: '../outside.sql' leads outside the workspace") for p in problems)
    assert any(p.startswith("deployment_config.local.state_dir: '/tmp/elsewhere' leads outside") for p in problems)


def test_a_platform_block_is_required_for_its_platform(tmp_path: Path) -> None:
    config = base_config()
    del config["deployment_config"]["local"]
    assert problems_of(config, tmp_path) == (
        "deployment_config.local: required when platform is local; "
        "add local: {command: [...], listen: '127.0.0.1:8080'}",
    )


def test_canary_weights_must_grow(tmp_path: Path) -> None:
    config = base_config()
    config["deployment_config"]["strategy"] = "canary"
    config["deployment_config"]["canary"] = {"steps": [{"weight": 20}, {"weight": 10}]}
    assert problems_of(config, tmp_path) == (
        "deployment_config.canary.steps[1].weight: 10 should be greater than the step before (20)",
    )


def test_yaml_aliases_are_refused_so_no_billion_laughs(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text('a: &a ["x","x"]\nb: [*a, *a]\n')
    with pytest.raises(ConfigError, match="anchors and aliases are not allowed"):
        read_config_file(path)


def test_yaml_tags_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("a: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="tags"):
        read_config_file(path)


def test_non_utf8_and_missing_config_files_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(ConfigError, match="is not UTF-8"):
        read_config_file(path)
    with pytest.raises(ConfigError, match="not found"):
        read_config_file(tmp_path / "missing.yml")


def test_inputs_are_checked_with_the_config(tmp_path: Path) -> None:
    write_config(tmp_path, base_config())
    raw = {"config": "deploy.json", "mode": "yolo", "validation-run-id": "x'; DROP TABLE runs; --", "pr-number": "-3"}
    with pytest.raises(ConfigError) as caught:
        load_request(raw, {"GITHUB_WORKSPACE": str(tmp_path)})
    problems = caught.value.problems
    assert (
        problems[0]
        == "mode: 'yolo' is not a mode; use one of deploy, plan, rollback, preview, preview-teardown, recover, delete"
    )
    assert problems[1].startswith("validation-run-id: should be 1-128 characters")
    assert any(p.startswith("version: missing") for p in problems)
    assert any(p == "pr-number: '-3' should be a positive whole number" for p in problems)


def test_version_defaults_to_the_short_sha(tmp_path: Path) -> None:
    write_config(tmp_path, base_config())
    env = {"GITHUB_WORKSPACE": str(tmp_path), "GITHUB_SHA": "0123456789abcdef"}
    request = load_request({"config": "deploy.json", "validation-run-id": "run-1"}, env)
    assert request.inputs.version == "0123456"
    assert request.validation_run_id == "run-1"


def test_the_schema_default_config_is_used_when_no_config_is_named(tmp_path: Path) -> None:
    (tmp_path / ".github").mkdir()
    write_config(tmp_path, copy.deepcopy(base_config()), ".github/deploy-orchestrator.yml")
    request = load_request({"version": "v1"}, {"GITHUB_WORKSPACE": str(tmp_path)})
    assert request.inputs.config_path == tmp_path / ".github/deploy-orchestrator.yml"
