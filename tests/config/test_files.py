"""Files and structure: loops, FIFOs, devices, depth and keys refused by name, never a hang or a traceback."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.artifacts import digest_artifacts
from orchestrator.config import load_request, parse_config, read_config_file
from orchestrator.errors import ConfigError
from orchestrator.github_event import read_event
from orchestrator.migrations.scripts import discover
from orchestrator.schema_errors import join_path
from tests.workspace import base_config, write_config

pytestmark = pytest.mark.timeout(30)  # a FIFO opened for reading would block here for ever


def _request_problems(workspace: Path, raw: dict[str, str], **env: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        load_request({"version": "v1", **raw}, {"GITHUB_WORKSPACE": str(workspace), **env})
    return caught.value.problems


def test_a_symlink_loop_as_the_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "deploy.json").symlink_to(tmp_path / "deploy.json")
    assert _request_problems(tmp_path, {"config": "deploy.json"}) == (
        "config: 'deploy.json' is a symlink loop; point the link at a real file",
    )


def test_a_fifo_as_the_config_is_refused_without_opening_it_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "deploy.json")
    assert _request_problems(tmp_path, {"config": "deploy.json"}) == (
        "config: 'deploy.json' is a FIFO (named pipe), not a regular file; point it at a regular file",
    )
    with pytest.raises(ConfigError, match="is a FIFO"):
        read_config_file(tmp_path / "deploy.json", shown_as="deploy.json")


def test_a_device_or_directory_as_the_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dev/zero is a character device, not a regular file"):
        read_config_file(Path("/dev/zero"))
    (tmp_path / "deploy.json").mkdir()
    assert _request_problems(tmp_path, {"config": "deploy.json"}) == (
        "config: 'deploy.json' is a directory, not a regular file; point it at a regular file",
    )


def test_an_oversized_config_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yml"
    path.write_text("a: " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match=r"is 1048580 bytes; the limit is 1048576"):
        read_config_file(path, shown_as="deploy.yml")


def test_a_symlink_loop_among_the_migrations_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m").symlink_to(tmp_path / "m")
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "V2__loop.sql").symlink_to(tmp_path / "db" / "V2__loop.sql")
    config = base_config()
    config["artifacts"]["migrations"] = ["m"]
    with pytest.raises(ConfigError) as caught:
        parse_config(config, tmp_path)
    assert caught.value.problems == ("artifacts.migrations[0]: 'm' is a symlink loop; point the link at a real file",)
    with pytest.raises(ConfigError) as found:
        discover([Path("db")], tmp_path)
    assert found.value.problems == (
        "artifacts.migrations: db/V2__loop.sql is a symlink loop; point the link at a real file",
    )


def test_a_fifo_among_the_migrations_is_refused_by_the_runner_and_the_digests(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "V1__ok.sql").write_text("CREATE TABLE a (id int);\n")
    os.mkfifo(tmp_path / "db" / "V2__pipe.sql")
    with pytest.raises(ConfigError) as found:
        discover([Path("db")], tmp_path)
    assert found.value.problems == (
        "artifacts.migrations: db/V2__pipe.sql is a FIFO (named pipe), not a regular file; point it at a regular file",
    )
    config = base_config()
    config["artifacts"]["migrations"] = ["db"]
    with pytest.raises(ConfigError, match=r"artifacts.migrations\[0\]: db/V2__pipe.sql is not a regular file"):
        digest_artifacts(parse_config(config, tmp_path).artifacts, tmp_path)


def test_a_fifo_listed_directly_as_a_migration_is_refused_at_the_config(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "V1__pipe.sql")
    config = base_config()
    config["artifacts"]["migrations"] = ["V1__pipe.sql"]
    with pytest.raises(ConfigError) as caught:
        parse_config(config, tmp_path)
    assert caught.value.problems == (
        "artifacts.migrations[0]: 'V1__pipe.sql' is a FIFO (named pipe), not a regular file or a directory; "
        "point it at a regular file or a directory",
    )


def test_a_symlink_loop_inside_an_odoo_module_is_refused(tmp_path: Path) -> None:
    module = tmp_path / "addons" / "shop"
    module.mkdir(parents=True)
    (module / "__manifest__.py").write_text("{'name': 'shop', 'version': '1.0', 'depends': []}\n")
    (module / "loop").symlink_to(module / "loop")
    config = base_config()
    config["artifacts"]["odoo_modules"] = ["addons/shop"]
    config["odoo"] = {"upgrade_command": ["true"]}
    with pytest.raises(ConfigError) as caught:
        digest_artifacts(parse_config(config, tmp_path).artifacts, tmp_path)
    assert caught.value.problems == (
        "artifacts.odoo_modules[0]: symlink loop is a symlink loop; point the link at a real file",
    )


def test_a_state_path_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "metrics.prom")
    config = base_config()
    config["metrics"] = {"textfile": "metrics.prom"}
    with pytest.raises(ConfigError) as caught:
        parse_config(config, tmp_path)
    assert caught.value.problems == (
        "metrics.textfile: 'metrics.prom' is a FIFO (named pipe), not a regular file; point it at a regular file",
    )


@pytest.mark.parametrize("suffix", [".json", ".yml"])
def test_deep_nesting_is_refused_quickly_before_parsing(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"deploy{suffix}"
    path.write_text("[" * 100_000 + "]" * 100_000)
    started = time.monotonic()
    with pytest.raises(ConfigError, match="nested more than 32 levels deep"):
        read_config_file(path)
    assert time.monotonic() - started < 20, "a scan quadratic in the nesting would take minutes"


def test_deep_block_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yml"
    path.write_text("".join(f"{' ' * i}k{i}:\n" for i in range(40)) + " " * 40 + "v: 1\n")
    with pytest.raises(ConfigError) as caught:
        read_config_file(path, shown_as="deploy.yml")
    assert caught.value.problems == (
        "config: deploy.yml line 33: nested more than 32 levels deep; a config needs far fewer",
    )


def test_an_unquoted_on_key_is_refused_with_the_fix(tmp_path: Path) -> None:
    text = yaml.safe_dump(base_config()) + "notifications:\n  on: [failed]\n"
    (tmp_path / "deploy.yml").write_text(text)
    (problem,) = _request_problems(tmp_path, {"config": "deploy.yml"})
    assert problem.endswith(
        "notifications.on: YAML reads the unquoted key 'on' as true or false, and keys must be strings; "
        'quote it ("on":)'
    )
    (tmp_path / "deploy.yml").write_text(text.replace("  on:", '  "on":'))
    request = load_request({"config": "deploy.yml", "version": "v1"}, {"GITHUB_WORKSPACE": str(tmp_path)})
    assert request.config.notifications.on == frozenset({"failed"})


@pytest.mark.parametrize(("key", "reads_as"), [("1", "a number"), ("~", "null"), ("no", "true or false")])
def test_any_non_string_yaml_key_is_refused(tmp_path: Path, key: str, reads_as: str) -> None:
    path = tmp_path / "deploy.yml"
    path.write_text(f"environment: prod\n{key}: x\n")
    with pytest.raises(ConfigError) as caught:
        read_config_file(path, shown_as="deploy.yml")
    assert caught.value.problems == (
        f"config: deploy.yml line 2: {join_path('', key)}: YAML reads the unquoted key {key!r} as {reads_as}, "
        f'and keys must be strings; quote it ("{key}":)',
    )


def test_non_string_keys_handed_over_in_process_are_refused(tmp_path: Path) -> None:
    config = base_config()
    config["notifications"] = {True: ["failed"]}
    with pytest.raises(ConfigError) as caught:
        parse_config(config, tmp_path)
    assert caught.value.problems == (
        'notifications: the key True is not a string; keys must be strings (in YAML, quote keys such as "on", '
        '"yes" or "no")',
    )


def test_duplicate_keys_are_refused_in_yaml_and_json(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yml"
    path.write_text("health_check:\n  retries: 3\n  retries: 300\n")
    with pytest.raises(ConfigError, match=r"line 3: health_check.retries: duplicate key; keep one"):
        read_config_file(path)
    path = tmp_path / "deploy.json"
    path.write_text('{"environment": "a", "environment": "b"}')
    with pytest.raises(ConfigError, match="the key 'environment' appears twice in one mapping; keep one"):
        read_config_file(path)


def test_a_yaml_integer_too_long_to_convert_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yml"
    path.write_text("retries: " + "9" * 5000 + "\n")
    with pytest.raises(ConfigError, match="a value cannot be read"):
        read_config_file(path, shown_as="deploy.yml")


@pytest.mark.parametrize("number", ["²", "٣", "1e3", "0", "-1", "99999999999"])
def test_a_pr_number_must_be_ascii_digits_in_range(tmp_path: Path, number: str) -> None:
    write_config(tmp_path, base_config())
    problems = _request_problems(tmp_path, {"config": "deploy.json", "mode": "preview", "pr-number": number})
    assert problems == (f"pr-number: {number!r} should be a positive whole number",)


def test_the_event_payload_is_read_safely(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"number": 7, "pull_request": {"head": {"sha": "ab12"}}}))
    assert read_event({"GITHUB_EVENT_PATH": str(event)}).pr_number == 7
    event.write_text(json.dumps({"number": True}))
    assert read_event({"GITHUB_EVENT_PATH": str(event)}).pr_number is None
    event.write_text("[" * 10_000)
    assert "nested more than 64 levels deep" in (read_event({"GITHUB_EVENT_PATH": str(event)}).problem or "")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert read_event({"GITHUB_EVENT_PATH": str(fifo)}).problem == (
        f"GITHUB_EVENT_PATH: {fifo} is a FIFO (named pipe), not a regular file; point it at a regular file"
    )
    write_config(tmp_path, base_config())
    problems = _request_problems(tmp_path, {"config": "deploy.json", "mode": "preview"}, GITHUB_EVENT_PATH=str(fifo))
    assert problems == (
        "pr-number: required in preview modes (run on pull_request events or pass --pr-number); the event payload "
        f"could not be read (GITHUB_EVENT_PATH: {fifo} is a FIFO (named pipe), not a regular file; point it at a "
        "regular file)",
    )


def test_odd_keys_are_quoted_in_field_paths(tmp_path: Path) -> None:
    config = base_config()
    config[""] = {"x": "\x00"}
    config["a b"] = 1
    with pytest.raises(ConfigError) as caught:
        parse_config(config, tmp_path)
    assert caught.value.problems == ("[''].x: contains a NUL byte; remove it",)
    del config[""]
    with pytest.raises(ConfigError) as caught:
        parse_config(config, tmp_path)
    assert caught.value.problems[0].startswith("['a b']: unknown field; remove it")
