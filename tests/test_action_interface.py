"""action.yml, the CLI flags, the config schema and the report stay in step."""

from __future__ import annotations

from pathlib import Path

import yaml

from orchestrator.cli import ENV_ONLY_INPUTS, _parser
from orchestrator.config import INPUTS, SCHEMA_DIR
from orchestrator.report import OUTPUTS

ROOT = Path(__file__).resolve().parent.parent


def action() -> dict:
    return yaml.safe_load((ROOT / "action.yml").read_text())


def test_action_inputs_are_exactly_the_cli_inputs_with_the_same_descriptions() -> None:
    inputs = action()["inputs"]
    assert list(inputs) == list(INPUTS)
    for name, spec in inputs.items():
        assert spec["description"] == INPUTS[name]


def test_every_input_is_a_cli_flag_except_the_token() -> None:
    flags = {opt for a in _parser()._actions for opt in a.option_strings}
    assert {f"--{name}" for name in INPUTS if name not in ENV_ONLY_INPUTS} <= flags
    assert {"github-token"} == ENV_ONLY_INPUTS
    assert "--github-token" not in flags  # a flag's value is in the process list for everyone to read


def test_action_outputs_are_exactly_what_the_report_writes() -> None:
    outputs = action()["outputs"]
    assert list(outputs) == list(OUTPUTS)
    for name, spec in outputs.items():
        assert spec["description"] == OUTPUTS[name]


def test_it_is_a_docker_action_built_from_the_dockerfile() -> None:
    assert action()["runs"] == {"using": "docker", "image": "Dockerfile"}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "\nUSER " not in dockerfile and "\nWORKDIR " not in dockerfile
    assert 'ENTRYPOINT ["python", "/action/entrypoint.py"]' in dockerfile


def test_the_dockerfile_installs_with_the_same_script_as_ci() -> None:
    assert "bash /action/.ci/install.sh runtime" in (ROOT / "Dockerfile").read_text()
    assert "make test" in (ROOT / ".ci/run").read_text()
    assert "bash .ci/install.sh test" in (ROOT / "Makefile").read_text()


def test_schemas_are_where_config_reads_them() -> None:
    assert (SCHEMA_DIR / "deploy-config.schema.json").exists()
    assert (SCHEMA_DIR / "deploy-result.schema.json").exists()
