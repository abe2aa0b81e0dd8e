"""There is no way to skip, force or override a gate: not in the config, the inputs, the environment or the API.

These tests read the product's interfaces as they stand, so a later change that adds such a
switch anywhere (schema, action.yml, CLI inputs, source) fails here and has to argue its case.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from orchestrator import artifacts, digests_command, gates, sqlagent, store, store_rows
from orchestrator.contract import GatesConfig

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "orchestrator"

# A verb that defeats a check, next to (or standing for) the thing it would defeat.
OVERRIDE = re.compile(
    r"(override|skip|force|bypass|ignore|disable|no|allow|unsafe|insecure)[-_ ]?(the[-_ ])?"
    r"(gates?|validation|validated|compliance|compliant|verdicts?|digests?|artifact[-_ ]?check|unvalidated|tests?"
    r"|provenance|sql[-_ ]?agent|agent[-_ ]?check|unrecorded|origin|authorship)",
    re.IGNORECASE,
)
BARE = re.compile(r"^(override|skip|force|bypass|yolo|unsafe)([-_].*)?$", re.IGNORECASE)
# In source, platform APIs legitimately say `skip_pin`, `force_build`: only the bare verb is suspect there.
BARE_WORD = re.compile(r"^(override|skip|force|bypass|yolo|unsafe)$", re.IGNORECASE)


def _property_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                yield from value.keys()
            yield from _property_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _property_names(item)


def test_the_config_schema_has_no_override_switch() -> None:
    schema = json.loads((ROOT / "schema" / "deploy-config.schema.json").read_text())
    names = sorted(set(_property_names(schema)))
    assert "validation_run_id" in names and "gates" in names  # the walk sees the real schema
    offenders = [n for n in names if OVERRIDE.search(n) or BARE.match(n)]
    assert offenders == []


def test_the_gates_section_has_only_where_and_how_long_never_whether() -> None:
    schema = json.loads((ROOT / "schema" / "deploy-config.schema.json").read_text())
    section = schema["properties"]["gates"]
    assert section["additionalProperties"] is False
    assert set(section["properties"]) == {
        "source",
        "url",
        "token_env_var",
        "dsn_env_var",
        "max_age_hours",
        "timeout_seconds",
    }
    assert not any(p.get("type") == "boolean" for p in section["properties"].values())
    assert [f.name for f in dataclasses.fields(GatesConfig) if f.type in ("bool", bool)] == []


def test_action_inputs_have_no_override_switch() -> None:
    action = ROOT / "action.yml"
    names: list[str] = []
    if action.exists():
        names += list((yaml.safe_load(action.read_text()) or {}).get("inputs", {}))
    config_module = PACKAGE / "config.py"
    if config_module.exists():
        # The CLI/Action inputs table: every kebab-case string key the parser knows.
        tree = ast.parse(config_module.read_text())
        names += [
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and re.fullmatch(r"[a-z]+(-[a-z]+)+", n.value)
        ]
    offenders = [n for n in names if OVERRIDE.search(n) or BARE.match(n)]
    assert offenders == []


def _source_words(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.Name):
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute):
            yield node.lineno, node.attr
        elif isinstance(node, ast.arg):
            yield node.lineno, node.arg
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            yield node.lineno, node.name


def test_no_source_file_names_a_gate_override() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert PACKAGE / "gates.py" in files
    offenders = []
    for path in files:
        for line, word in _source_words(path):
            # Prose (docstrings, messages) may say that no override exists; identifiers and short keys may not.
            if len(word) <= 40 and " " not in word and (OVERRIDE.search(word) or BARE_WORD.match(word)):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {word}")
    assert offenders == []


def test_the_gate_modules_read_no_environment() -> None:
    files = [Path(inspect.getfile(module)) for module in (gates, store, store_rows, sqlagent)]
    files += sorted(Path(inspect.getfile(artifacts)).parent.glob("*.py"))  # the package: every module
    assert len(files) > 5
    for file in files:
        text = file.read_text()
        assert "os.environ" not in text and "getenv" not in text, file.name


def test_check_gates_takes_no_switch() -> None:
    parameters = inspect.signature(gates.check_gates).parameters
    assert list(parameters) == ["run_id", "digests", "source", "config", "now"]


def test_the_provenance_gate_takes_no_switch() -> None:
    assert list(inspect.signature(sqlagent.check_provenance).parameters) == [
        "digests",
        "validated",
        "approved",
        "source",
        "run_id",
        "verdict_id",
    ]
    assert list(inspect.signature(sqlagent.check_undo_provenance).parameters) == ["undos", "source"]
    # The one agent whose records count is a constant, not a setting.
    assert sqlagent.SQLAGENT_ID == "agent_004"
    tree = ast.parse(Path(inspect.getfile(sqlagent)).read_text())
    uses = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value == "agent_004"]
    assert len(uses) == 1


def test_the_digests_command_has_no_override_switch() -> None:
    tree = ast.parse(Path(inspect.getfile(digests_command)).read_text())
    flags = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("--")
    ]
    assert "--sqlagent-run-id" in flags  # the walk sees the real parser
    offenders = [f for f in flags if OVERRIDE.search(f.lstrip("-")) or BARE.match(f.lstrip("-"))]
    assert offenders == []


def test_the_sqlagent_table_has_no_column_that_could_waive_the_check() -> None:
    ddl = (ROOT / "schema" / "pipeline-store.sql").read_text()
    table = ddl.split("CREATE TABLE IF NOT EXISTS sqlagent_migrations", 1)[1].split(");", 1)[0]
    columns = [line.split()[0] for line in table.splitlines() if re.match(r"^\s{4}[a-z0-9_]+\s", line)]
    assert columns == [
        "id",
        "sqlagent_run_id",
        "agent_id",
        "filename",
        "version",
        "sha256",
        "undo_filename",
        "undo_sha256",
        "recorded_at",
    ]
    assert "boolean" not in table


def test_the_scan_catches_a_provenance_switch() -> None:
    for name in ("skip_provenance", "no-sqlagent", "allow_unrecorded", "ignore_origin", "bypass-sql-agent"):
        assert OVERRIDE.search(name), name
