"""Numbers: finite only, within sane bounds, and combinations that can work; refused before anything starts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.config import load_request, parse_config, read_config_file
from orchestrator.errors import ConfigError
from tests.workspace import base_config

FIELDS = [
    ("gates", "max_age_hours"),
    ("health_check", "timeout_seconds"),
    ("verification", "deadline_seconds"),
    ("deployment_config", "local", "startup_timeout_seconds"),
    ("migrations", "lock_timeout_seconds"),
    ("deploy_lock", "wait_seconds"),
]


def _set(config: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return config


def _problems(config: dict[str, Any], workspace: Path) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config, workspace)
    return caught.value.problems


def _yaml_problems(text: str, workspace: Path) -> tuple[str, ...]:
    (workspace / "deploy.yml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_request({"config": "deploy.yml", "version": "v1"}, {"GITHUB_WORKSPACE": str(workspace)})
    return caught.value.problems


@pytest.mark.parametrize("path", FIELDS, ids=".".join)
@pytest.mark.parametrize("literal", [".nan", ".NaN", ".inf", "-.inf"])
def test_yaml_nan_and_infinity_are_refused_with_the_field_path(
    tmp_path: Path, path: tuple[str, ...], literal: str
) -> None:
    text = yaml.safe_dump(_set(base_config(), path, 12345.5)).replace("12345.5", literal)
    (problem,) = _yaml_problems(text, tmp_path)
    assert problem.startswith(f"{'.'.join(path)}: ")
    assert "is not a finite number; write a number within the field's range" in problem


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_json_nan_and_infinity_are_refused(tmp_path: Path, literal: str) -> None:
    text = json.dumps(_set(base_config(), ("deploy_lock", "wait_seconds"), 7.25)).replace("7.25", literal)
    path = tmp_path / "deploy.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        read_config_file(path, shown_as="deploy.json")
    assert caught.value.problems == (
        f"config: deploy.json is not valid JSON: {literal} is not a number JSON allows; write a finite number",
    )


def test_non_finite_numbers_handed_over_in_process_are_refused_too(tmp_path: Path) -> None:
    config = _set(base_config(), ("deploy_lock", "wait_seconds"), float("nan"))
    _set(config, ("gates", "max_age_hours"), float("inf"))
    assert _problems(config, tmp_path) == (
        "deploy_lock.wait_seconds: nan is not a finite number; write a number within the field's range",
        "gates.max_age_hours: inf is not a finite number; write a number within the field's range",
    )


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            ("gates", "max_age_hours"),
            1e12,
            "gates.max_age_hours: 1000000000000.0 is out of range; should be greater than 0 to 8760",
        ),
        (
            ("deploy_lock", "wait_seconds"),
            1e12,
            "deploy_lock.wait_seconds: 1000000000000.0 is out of range; should be from 0 to 7200",
        ),
        (
            ("health_check", "timeout_seconds"),
            10**30,
            "health_check.timeout_seconds: 1000000000000000000000000000000 is out of range; "
            "should be greater than 0 to 86400",
        ),
        (
            ("verification", "background_jobs"),
            [{"name": "j", "sql": "select 1", "max_age_seconds": 1e300}],
            "verification.background_jobs[0].max_age_seconds: 1e+300 is out of range; "
            "should be greater than 0 to 31536000",
        ),
    ],
)
def test_huge_numbers_are_out_of_range(tmp_path: Path, path: tuple[str, ...], value: Any, expected: str) -> None:
    assert _problems(_set(base_config(), path, value), tmp_path) == (expected,)


def test_yaml_1e12_for_the_lock_wait_is_refused_either_way_yaml_reads_it(tmp_path: Path) -> None:
    text = yaml.safe_dump(_set(base_config(), ("deploy_lock", "wait_seconds"), 7.25))
    assert _yaml_problems(text.replace("7.25", "1.0e+12"), tmp_path) == (
        "deploy_lock.wait_seconds: 1000000000000.0 is out of range; should be from 0 to 7200",
    )
    # YAML 1.1 reads 1e12 (no dot, no sign) as text; the message says how to write the number.
    assert _yaml_problems(text.replace("7.25", "1e12"), tmp_path) == (
        "deploy_lock.wait_seconds: should be a number, got str '1e12' (YAML 1.1 reads 1e12 as text; "
        "write it as 1.0e+12, or as a plain number)",
    )


@pytest.mark.parametrize("listen", ["127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1:65536", "localhost:070000"])
def test_a_listen_port_must_be_from_1_to_65535(tmp_path: Path, listen: str) -> None:
    config = _set(base_config(), ("deployment_config", "local", "listen"), listen)
    assert _problems(config, tmp_path) == (
        f"deployment_config.local.listen: {listen!r} should be 127.0.0.1, localhost or 0.0.0.0 and a port "
        "from 1 to 65535, like 127.0.0.1:8080",
    )


@pytest.mark.parametrize("listen", ["127.0.0.1:1", "localhost:65535", "0.0.0.0:8080"])
def test_listen_ports_in_range_are_accepted(tmp_path: Path, listen: str) -> None:
    config = parse_config(_set(base_config(), ("deployment_config", "local", "listen"), listen), tmp_path)
    assert config.deployment.local is not None and config.deployment.local.listen == listen


def test_a_count_written_as_a_float_is_refused(tmp_path: Path) -> None:
    config = _set(base_config(), ("deployment_config", "local", "replicas"), 2.0)
    assert _problems(config, tmp_path) == ("deployment_config.local.replicas: should be a whole number, got float 2.0",)


def test_booleans_are_not_numbers(tmp_path: Path) -> None:
    config = _set(base_config(), ("health_check", "retries"), True)
    assert _problems(config, tmp_path) == ("health_check.retries: should be a whole number, got bool True",)


def test_verification_retries_must_fit_in_the_deadline(tmp_path: Path) -> None:
    config = _set(base_config(), ("verification",), {"deadline_seconds": 5, "retries": 11, "interval_seconds": 1})
    assert _problems(config, tmp_path) == (
        "verification.retries: 11 attempts 1 s apart need 10 s, which does not fit in "
        "verification.deadline_seconds (5); raise deadline_seconds or lower retries or interval_seconds",
    )


def test_a_health_check_that_could_run_for_days_is_refused(tmp_path: Path) -> None:
    config = base_config()
    config["health_check"].update({"retries": 1000, "timeout_seconds": 600, "interval_seconds": 60})
    assert _problems(config, tmp_path) == (
        "health_check.retries: 1000 attempts of up to 600 s, 60 s apart, could take 183.3 h; keep "
        "retries * (timeout_seconds + interval_seconds) within 24 h",
    )


def test_canary_pauses_may_not_add_up_past_a_day(tmp_path: Path) -> None:
    config = base_config()
    config["deployment_config"]["strategy"] = "canary"
    config["deployment_config"]["canary"] = {"steps": [{"weight": w, "pause_seconds": 50_000} for w in (10, 50, 100)]}
    assert _problems(config, tmp_path) == (
        "deployment_config.canary.steps: the pauses add up to 41.7 h; keep the whole rollout within 24 h",
    )


def test_a_metric_range_no_value_can_fall_in_is_refused(tmp_path: Path) -> None:
    config = base_config()
    check = {"name": "errors", "scrape_path": "/metrics", "series": "errors_total", "min": 5, "max": 1}
    config["verification"] = {"metrics": [check]}
    assert _problems(config, tmp_path) == (
        "verification.metrics[0].min: 5 is above max 1, so no value could pass; swap them or widen the range",
    )
