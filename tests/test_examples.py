"""The examples the README points at stay valid: the config against the schema, the workflows against
GitHub's workflow schema (check-jsonschema's vendored copy), and they use the Action's real inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from orchestrator.config import INPUTS, parse_config, read_config_file

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
WORKFLOWS = sorted((EXAMPLES / "workflows").glob("*.yml")) + sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def test_the_example_config_is_valid() -> None:
    config = parse_config(read_config_file(EXAMPLES / "deploy-orchestrator.yml"), EXAMPLES)
    assert config.deployment.platform == "digitalocean"
    assert config.verification.background_jobs[0].name == "cron"


def test_the_self_test_config_is_valid() -> None:
    config = parse_config(read_config_file(ROOT / ".github" / "self-test" / "deploy.json"), ROOT)
    assert config.deployment.platform == "local"


def test_the_example_workflows_are_valid_and_use_real_inputs() -> None:
    workflows = WORKFLOWS
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, workflows)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for workflow in workflows:
        for job in yaml.safe_load(workflow.read_text())["jobs"].values():
            for step in job["steps"]:
                if str(step.get("uses", "")).startswith(("org/deploy-orchestrator", "./")):
                    assert set(step["with"]) <= set(INPUTS), workflow.name
