"""Property-based: whatever the document, text, arguments or file, the answer is a ConfigError naming a field.

Budgets are small (a few seconds each) so CI stays fast; CI runs them derandomized (tests/conftest.py
loads the `ci` profile), so a failure there reproduces. `python bench/fuzz.py` runs the long version.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.cli import raw_inputs
from orchestrator.config import load_request, parse_config, read_config_file
from orchestrator.errors import ConfigError
from orchestrator.github_event import read_event
from tests.fuzzing import (
    FILE_KINDS,
    arguments,
    check_problems,
    config_texts,
    documents,
    event_payloads,
    file_names,
    make_file,
)
from tests.workspace import base_config

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = Path(tempfile.mkdtemp(prefix="do-props-"))


@settings(max_examples=300, deadline=None)
@given(documents())
def test_any_document_is_accepted_or_refused_with_field_paths(document: Any) -> None:
    try:
        parse_config(document, WORKSPACE)
    except ConfigError as exc:
        check_problems(exc.problems, document)


@settings(max_examples=200, deadline=None)
@given(config_texts(), st.sampled_from([".yml", ".json"]))
def test_any_config_text_is_read_or_refused_with_field_paths(text: str, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"deploy{suffix}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            document = read_config_file(path)
        except ConfigError as exc:
            check_problems(exc.problems, None)
            return
        try:
            parse_config(document, Path(folder))
        except ConfigError as exc:
            check_problems(exc.problems, document)


@settings(max_examples=200, deadline=None)
@given(arguments())
def test_any_argument_list_is_taken_or_refused_with_field_paths(args: list[str]) -> None:
    try:
        raw = raw_inputs(args, {})
        load_request({**raw, "config": raw.get("config", "deploy.json")}, {"GITHUB_WORKSPACE": str(WORKSPACE)})
    except ConfigError as exc:
        check_problems(exc.problems, None)


@settings(max_examples=150, deadline=None)
@given(file_names(), st.sampled_from(FILE_KINDS), st.sampled_from(["config", "migrations", "textfile"]))
def test_odd_file_names_and_kinds_never_hang_or_crash(name: str, kind: str, role: str) -> None:
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        workspace = Path(folder)
        sock = make_file(workspace / name, kind, b"{}")
        if sock is not None:
            stack.callback(sock.close)
        config = base_config()
        if role == "migrations":
            config["artifacts"]["migrations"] = [name]
        elif role == "textfile":
            config["metrics"] = {"textfile": name}
        try:
            if role == "config":
                load_request({"config": name, "version": "v1"}, {"GITHUB_WORKSPACE": folder})
            else:
                parse_config(config, workspace)
        except ConfigError as exc:
            check_problems(exc.problems, None)


@settings(max_examples=150, deadline=None)
@given(event_payloads())
def test_any_event_payload_gives_facts_or_a_reason(payload: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "event.json"
        path.write_text(payload, encoding="utf-8", errors="surrogatepass")
        event = read_event({"GITHUB_EVENT_PATH": str(path)})
        assert event.pr_number is None or (type(event.pr_number) is int and event.pr_number > 0)
        assert event.head_sha is None or event.head_sha.isalnum()


@settings(max_examples=6, deadline=None)
@given(arguments())
def test_the_real_cli_exits_2_without_a_traceback(args: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            [sys.executable, str(ROOT / "entrypoint.py"), "run", *args, "--config", "missing.yml"],
            env={"PATH": "/usr/bin:/bin", "GITHUB_WORKSPACE": folder, "HOME": folder},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert ": " in done.stderr
