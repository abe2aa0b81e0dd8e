"""The Action's image, built from the Dockerfile with podman and run exactly as the runner runs a Docker action.

The runner starts the container with `--workdir /github/workspace`, the workspace, home, workflow and
file-command folders mounted, every input as `INPUT_<NAME>` (hyphens kept) and secrets passed by name
(`-e NAME`, the value only in the runner's environment, never in its argv). `.ci/container-image` builds
the image (on a locally made Debian base: no registry serves images here).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from orchestrator.artifacts import digest_artifacts
from orchestrator.config import parse_config
from orchestrator.demo.app import release_command
from tests.peers.do_simulator import DoSimulator
from tests.peers.verdicts import seed_passed
from tests.workspace import base_config, write_config

ROOT = Path(__file__).resolve().parents[2]
# One tag per checkout, so two checkouts testing at once never run each other's image.
IMAGE_NAME = "deploy-orchestrator:ci-" + hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
DO_IMAGE = "registry.digitalocean.com/acme/shop@sha256:" + "cd" * 32
TOKEN_CANARY = "dop_v1_container-canary-7f3a"

# The first case builds the image (minutes on a cold machine; layers and the pip cache are kept after).
# One xdist worker runs them all (`--dist loadgroup`), so the image is built once per session, not once per worker.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200), pytest.mark.xdist_group("container-image")]


@pytest.fixture(scope="session")
def image() -> str:
    for tool, package in (("podman", "podman"), ("debootstrap", "debootstrap"), ("runc", "runc")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install -y {package} (or run `bash .ci/install.sh test`)")
    done = subprocess.run(
        ["bash", str(ROOT / ".ci" / "container-image"), IMAGE_NAME], capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, f"building the image failed:\n{done.stderr[-4000:]}"
    return IMAGE_NAME


@dataclass(frozen=True)
class RunnerStep:
    """What one `uses: ./` step left behind: exit code, logs, and the runner's file commands."""

    exit_code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str


def parse_outputs(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT's `name=value` and `name<<DELIM` ... `DELIM` lines, as the runner reads them."""
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value: list[str] = []
            for body in lines:
                if body == delimiter:
                    break
                value.append(body)
            outputs[name] = "\n".join(value)
        elif "=" in line:
            name, value_text = line.split("=", 1)
            outputs[name] = value_text
    return outputs


def run_as_the_runner(
    image: str, work: Path, inputs: dict[str, str], secrets: dict[str, str] | None = None
) -> RunnerStep:
    """`podman run` with the runner's mounts, workdir, variables and file commands; host network for the peers."""
    workspace, home, workflow, commands = (work / d for d in ("workspace", "home", "workflow", "file_commands"))
    for folder in (workspace, home, workflow, commands):
        folder.mkdir(parents=True, exist_ok=True)
    (workflow / "event.json").write_text(json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "o/r"}}))
    step = uuid.uuid4().hex
    output_name, summary_name = f"set_output_{step}", f"step_summary_{step}"
    (commands / output_name).touch()
    (commands / summary_name).touch()
    env_names = {f"INPUT_{name.upper()}": value for name, value in inputs.items()}
    env_names.update(
        {
            "HOME": "/github/home",
            "GITHUB_ACTIONS": "true",
            "CI": "true",
            "GITHUB_WORKSPACE": "/github/workspace",
            "GITHUB_EVENT_PATH": "/github/workflow/event.json",
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_SHA": "0" * 40,
            "GITHUB_OUTPUT": f"/github/file_commands/{output_name}",
            "GITHUB_STEP_SUMMARY": f"/github/file_commands/{summary_name}",
        }
    )
    env_names.update(secrets or {})
    argv = ["podman", "run", "--rm", "--network", "host", "--workdir", "/github/workspace"]
    for host, inside in ((workspace, "/github/workspace"), (home, "/github/home"), (workflow, "/github/workflow")):
        argv += ["-v", f"{host}:{inside}"]
    argv += ["-v", f"{commands}:/github/file_commands"]
    for name in env_names:
        argv += ["-e", name]
    argv.append(image)
    assert not any(value in " ".join(argv) for value in (secrets or {}).values()), "a secret in podman's argv"
    done = subprocess.run(
        argv, env={**os.environ, **env_names}, capture_output=True, text=True, timeout=300, check=False
    )
    return RunnerStep(
        exit_code=done.returncode,
        stdout=done.stdout,
        stderr=done.stderr,
        outputs=parse_outputs((commands / output_name).read_text()),
        summary=(commands / summary_name).read_text(),
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """The runner's work folder; its `workspace` is what actions/checkout filled."""
    (tmp_path / "workspace").mkdir()
    return tmp_path


def local_config() -> dict[str, object]:
    config = base_config()
    # The image's own interpreter, not this test's.
    config["deployment_config"]["local"]["command"] = release_command("python")  # type: ignore[index]
    return config


def test_the_image_has_the_fast_extra_so_the_local_data_plane_runs_on_uvloop(image: str) -> None:
    probe = "from orchestrator.platforms.local.event_loop import new_loop; print(type(new_loop()))"
    done = subprocess.run(
        ["podman", "run", "--rm", "--entrypoint", "python", image, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "uvloop" in done.stdout, done.stdout


def test_a_bad_config_exits_2_and_still_writes_outputs_and_a_summary(image: str, work: Path) -> None:
    config = local_config()
    config["health_check"]["retries"] = 0  # type: ignore[index]
    write_config(work / "workspace", config)
    step = run_as_the_runner(image, work, {"config": "deploy.json", "version": "v1"})
    assert step.exit_code == 2, step.stderr
    assert "::error" in step.stdout
    assert "health_check.retries" in step.stderr
    assert step.outputs["status"] == "failed"
    assert "health_check.retries" in step.summary, "the summary lists every problem"


def test_plan_mode_exits_0_and_touches_nothing(image: str, work: Path, pg_dsn: str) -> None:
    config = local_config()
    write_config(work / "workspace", config)
    seed_passed(pg_dsn, "run-v1", digest_artifacts(parse_config(config, work / "workspace").artifacts, work))
    inputs = {"config": "deploy.json", "version": "v1", "mode": "plan", "validation-run-id": "run-v1"}
    step = run_as_the_runner(image, work, inputs, {"DATABASE_URL": pg_dsn})
    assert step.exit_code == 0, step.stdout + step.stderr
    assert step.summary.strip(), "plan writes a step summary"
    assert not (work / "workspace" / ".deploy-orchestrator" / "local").exists()


def test_a_gate_refusal_exits_3(image: str, work: Path, pg_dsn: str) -> None:
    write_config(work / "workspace", local_config())
    step = run_as_the_runner(
        image,
        work,
        {"config": "deploy.json", "version": "v1", "validation-run-id": "run-never-seeded"},
        {"DATABASE_URL": pg_dsn},
    )
    assert step.exit_code == 3, step.stdout + step.stderr
    assert step.outputs["status"] == "failed"
    assert "run-never-seeded" in step.summary


@pytest.fixture
def sim() -> Iterator[DoSimulator]:
    simulator = DoSimulator(
        token=TOKEN_CANARY,
        phases={"PENDING_BUILD": 0.05, "BUILDING": 0.1, "PENDING_DEPLOY": 0.05, "DEPLOYING": 0.1},
    )
    yield simulator
    simulator.close()
    assert simulator.violations == [], "\n".join(simulator.violations)


def test_a_real_deploy_to_the_digitalocean_simulator_sets_every_output(
    image: str, work: Path, pg_dsn: str, sim: DoSimulator
) -> None:
    workspace = work / "workspace"
    shutil.copy(sim.ca_bundle, workspace / "do-ca.pem")
    app_id = sim.seed_app("shop", version="v1")
    config = base_config()
    config["deployment_config"] = {"strategy": "blue_green", "platform": "digitalocean", "do_app_id": app_id}
    config["artifacts"]["docker_image"] = DO_IMAGE
    config["health_check"].update(retries=2, interval_seconds=0.1)
    write_config(workspace, config)
    seed_passed(pg_dsn, "run-v2", digest_artifacts(parse_config(config, workspace).artifacts, workspace))
    step = run_as_the_runner(
        image,
        work,
        {"config": "deploy.json", "version": "v2", "validation-run-id": "run-v2"},
        {
            "DATABASE_URL": pg_dsn,
            "DIGITALOCEAN_TOKEN": TOKEN_CANARY,
            "DIGITALOCEAN_API_URL": sim.url,
            "DIGITALOCEAN_CA_BUNDLE": "/github/workspace/do-ca.pem",
        },
    )
    assert step.exit_code == 0, step.stdout + step.stderr
    expected = {
        "result",
        "status",
        "deployment-id",
        "new-version",
        "previous-version",
        "url",
        "rolled-back",
        "result-file",
    }
    assert expected <= set(step.outputs), sorted(step.outputs)
    assert step.outputs["status"] == "success"
    assert step.outputs["new-version"] == "v2"
    assert step.outputs["previous-version"] == "v1"
    assert step.outputs["rolled-back"] == "false"
    assert json.loads(step.outputs["result"])["status"] == "success"
    assert requests.get(sim.app_json(app_id)["live_url"] + "/version", timeout=5).text == "v2"
    result_file = Path(step.outputs["result-file"])
    inside = result_file.relative_to("/github/workspace") if result_file.is_absolute() else result_file
    assert json.loads((workspace / inside).read_text())["deployment_id"] == step.outputs["deployment-id"]
    printed = "\n".join(line for line in step.stdout.splitlines() if not line.startswith("::add-mask::"))
    for text in (printed, step.stderr, step.summary, json.dumps(step.outputs)):
        assert TOKEN_CANARY not in text
