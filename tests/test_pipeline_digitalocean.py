"""The whole Action on DigitalOcean: the real pydo client against the App Platform simulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.artifacts import component_image_vars, digest_artifacts
from orchestrator.cli import Execution, execute
from orchestrator.config import parse_config
from tests.peers.do_simulator import DoSimulator
from tests.peers.verdicts import seed_passed
from tests.workspace import base_config, write_config

IMAGE = "registry.digitalocean.com/acme/shop@sha256:" + "ab" * 32


@pytest.fixture
def sim() -> Iterator[DoSimulator]:
    simulator = DoSimulator(phases={"PENDING_BUILD": 0.05, "BUILDING": 0.1, "PENDING_DEPLOY": 0.05, "DEPLOYING": 0.1})
    yield simulator
    simulator.close()
    assert simulator.violations == [], "\n".join(simulator.violations)


def deploy(
    tmp_path: Path,
    sim: DoSimulator,
    app_id: str,
    dsn: str,
    version: str,
    mode: str = "deploy",
    *,
    env: dict[str, str] | None = None,
    deployment_extra: dict[str, Any] | None = None,
    validated_env: dict[str, str] | None = None,
    **extra: Any,
) -> Execution:
    """One run of the Action; the validation run it names was recorded for `env` updated with
    `validated_env` (what the ValidationAgent saw, when a test makes the run differ from it)."""
    config = base_config()
    config["deployment_config"] = {
        "strategy": "blue_green",
        "platform": "digitalocean",
        "do_app_id": app_id,
        **(deployment_extra or {}),
    }
    config["artifacts"]["docker_image"] = IMAGE
    config["health_check"].update(retries=2, interval_seconds=0.1)
    config.update(extra)
    write_config(tmp_path, config)
    env = {
        "GITHUB_WORKSPACE": str(tmp_path),
        "DATABASE_URL": dsn,
        "DIGITALOCEAN_TOKEN": sim.token,
        "DIGITALOCEAN_API_URL": sim.url,
        "DIGITALOCEAN_CA_BUNDLE": sim.ca_bundle,
        "AGENTBENCH_TOKEN": "t0ken-canary-do",
        **(env or {}),
    }
    validated = {**env, **(validated_env or {})}
    digests = digest_artifacts(
        parse_config(config, tmp_path).artifacts,
        tmp_path,
        env=validated,
        component_images=component_image_vars(validated),
    )
    seed_passed(dsn, f"run-{version}", digests)
    raw = {"config": "deploy.json", "version": version, "validation-run-id": f"run-{version}", "mode": mode}
    return execute(raw, env)


def live_version(sim: DoSimulator, app_id: str) -> str:
    url = sim.app_json(app_id)["live_url"]
    return requests.get(url + "/version", timeout=5).text


def test_a_release_goes_live_through_app_platform(tmp_path: Path, sim: DoSimulator, pg_dsn: str) -> None:
    app_id = sim.seed_app("shop", version="v1")
    done = deploy(tmp_path, sim, app_id, pg_dsn, "v2")
    assert done.exit_code == 0, done.result and done.result.error
    assert done.result is not None
    assert done.result.deployment_details.previous_version == "v1"
    assert live_version(sim, app_id) == "v2"
    assert len(sim.deployments(app_id)) == 2


def test_a_failed_verification_rolls_back_through_the_rollback_api(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    app_id = sim.seed_app("shop", version="v1")
    verification = {"critical_endpoints": [{"path": "/version", "body_contains": "v1"}], "deadline_seconds": 10}
    done = deploy(tmp_path, sim, app_id, pg_dsn, "v2", verification=verification)
    assert done.exit_code == 1
    assert done.result is not None
    assert done.result.status == "rolled_back", done.result.error
    assert live_version(sim, app_id) == "v1"
    assert sim.count("POST", r".*/rollback/validate$") == 1
    assert sim.count("POST", r".*/rollback/commit$") == 1
    result = json.loads((tmp_path / ".deploy-orchestrator" / "result.json").read_text())
    assert sim.token not in json.dumps(result)


def test_an_unhealthy_release_never_takes_traffic_and_nothing_is_rolled_back(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    app_id = sim.seed_app("shop", version="v1")
    sim.set_health("v2", False)
    outputs = tmp_path / "github-output"
    done = deploy(tmp_path, sim, app_id, pg_dsn, "v2", env={"GITHUB_OUTPUT": str(outputs)})
    assert done.exit_code == 1
    assert done.result is not None
    assert done.result.status == "failed", done.result.error
    assert not done.result.rollback.triggered
    assert "rolled-back=false" in outputs.read_text()
    assert live_version(sim, app_id) == "v1"
    assert sim.count("POST", r".*/rollback.*") == 0


def test_a_build_that_ends_in_error_is_failed_with_the_old_release_still_serving(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    app_id = sim.seed_app("shop", version="v1")
    sim.fail_next_build = "Dockerfile:7: RUN npm ci exited with code 1"
    done = deploy(tmp_path, sim, app_id, pg_dsn, "v2")
    assert done.exit_code == 1
    assert done.result is not None
    assert done.result.status == "failed", done.result.error
    assert not done.result.rollback.triggered
    messages = [entry.message for entry in done.result.logs]
    assert any("v2 never went live, so nothing was rolled back: v1 is still serving" in m for m in messages)
    assert "RUN npm ci exited with code 1" in (done.result.error or "")
    assert live_version(sim, app_id) == "v1"
    assert [kind for _, kind in sim.log_requests] == ["BUILD", "DEPLOY"], "read in the order they happened"


def test_an_app_in_another_region_is_a_config_error_before_anything_is_touched(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    app_id = sim.seed_app("shop", version="v1")
    config = {"deployment_config": {"do_region": "nyc"}}
    done = deploy(tmp_path, sim, app_id, pg_dsn, "v2", deployment_extra=config["deployment_config"])
    assert done.exit_code == 2
    assert done.result is not None and done.result.error is not None
    assert "deployment_config.do_region: app shop" in done.result.error
    assert "runs in region 'ams', not 'nyc'" in done.result.error
    assert sim.count("PUT") == 0 and sim.count("POST") == 0
    assert live_version(sim, app_id) == "v1"


@pytest.mark.parametrize("ledger", [True, False], ids=["ledger", "no-ledger"])
def test_a_manual_rollback_after_a_rolled_back_deploy_never_returns_to_the_failed_release(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str, ledger: bool
) -> None:
    """Issue 11, point 6: v2 -> bad3 (verification failed, rolled back to v2) -> `mode: rollback`
    must not take bad3, still in App Platform's deployment list, as the release to return to."""
    app_id = sim.seed_app("shop", version="v1")
    extra: dict[str, Any] = {} if ledger else {"ledger": {"enabled": False}}
    assert deploy(tmp_path, sim, app_id, pg_dsn, "v2", **extra).exit_code == 0
    verification = {"critical_endpoints": [{"path": "/version", "body_contains": "v"}], "deadline_seconds": 10}
    failed = deploy(tmp_path, sim, app_id, pg_dsn, "bad3", verification=verification, **extra)
    assert failed.result is not None and failed.result.status == "rolled_back", failed.result
    assert live_version(sim, app_id) == "v2"

    done = deploy(tmp_path, sim, app_id, pg_dsn, "v2", mode="rollback", **extra)

    assert done.exit_code == 0, done.result and done.result.error
    assert done.result is not None
    assert done.result.deployment_details.new_version == "v1"
    assert live_version(sim, app_id) == "v1"
    logs = [entry.message for entry in done.result.logs]
    assert "manual rollback from v2 to v1" in logs

    # v2 was rolled back from now, bad3 never passed: nothing is left to return to, and the refusal
    # names what would be good (none) instead of taking either.
    refused = deploy(tmp_path, sim, app_id, pg_dsn, "v1", mode="rollback", **extra)
    assert refused.exit_code == 2
    assert refused.result is not None and refused.result.error is not None
    assert "no good release to roll back to; good releases to roll back to: none" in refused.result.error
    assert live_version(sim, app_id) == "v1"


def read_outputs(path: Path) -> dict[str, str]:
    """$GITHUB_OUTPUT as GitHub reads it: `name=value` lines and `name<<DELIM` blocks."""
    found: dict[str, str] = {}
    lines = iter(path.read_text().split("\n"))
    for line in lines:
        if "<<" in line and "=" not in line.split("<<", 1)[0]:
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            found[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            found[name] = value
    return found


def test_app_and_logs_are_outputs_and_printed_in_groups_when_asked(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    app_id = sim.seed_app("shop", version="v1")
    target = tmp_path / "github-output"
    done = deploy(
        tmp_path,
        sim,
        app_id,
        pg_dsn,
        "v2",
        env={"GITHUB_OUTPUT": str(target)},
        deployment_extra={"do_print_build_logs": True},
    )
    assert done.exit_code == 0, done.result and done.result.error
    outputs = read_outputs(target)
    app = json.loads(outputs["app"])
    assert app["id"] == app_id and app["active_deployment"]["phase"] == "ACTIVE"
    assert "using prebuilt image shop@sha256:" in outputs["build_logs"]
    assert "all instances healthy; routing traffic" in outputs["deploy_logs"]
    assert "platform_outputs" not in json.loads(outputs["result"]), "the result output leaves them to their own"
    printed = capsys.readouterr().out
    assert "::group::App Platform build logs of deployment" in printed
    assert "::group::App Platform deploy logs" not in printed, "do_print_deploy_logs is off"
    assert "::stop-commands::" in printed
    result = json.loads((tmp_path / ".deploy-orchestrator" / "result.json").read_text())
    assert result["platform_outputs"]["deploy_logs"] == outputs["deploy_logs"]


def test_a_worker_only_app_is_verified_by_what_exists_not_a_url(tmp_path: Path, sim: DoSimulator, pg_dsn: str) -> None:
    app_id = sim.seed_app("queue", version="v1", services=(), workers=("consumer",))
    assert "live_url" not in sim.app_json(app_id)
    done = deploy(tmp_path, sim, app_id, pg_dsn, "v2")
    assert done.exit_code == 0, done.result and done.result.error
    assert done.result is not None and done.result.url is None
    messages = [entry.message for entry in done.result.logs]
    assert any("the app has no URL (workers and jobs only); verified by what exists" in m for m in messages)
    assert "v2 is live (no URL: workers and jobs only)" in messages
    assert sim.count("GET", r"/v2/apps/[^/]+/health") == 1
    assert sim.deployments(app_id)[0]["phase"] == "ACTIVE"


def test_an_unhealthy_worker_is_rolled_back(tmp_path: Path, sim: DoSimulator, pg_dsn: str) -> None:
    app_id = sim.seed_app("queue", version="v1", services=(), workers=("consumer",))
    sim.set_health("v2", False)
    done = deploy(tmp_path, sim, app_id, pg_dsn, "v2")
    assert done.exit_code == 1
    assert done.result is not None and done.result.status == "rolled_back", done.result.error
    assert "consumer: UNHEALTHY, 0 of 1 replicas ready" in (done.result.error or "") + " ".join(
        e.message for e in done.result.logs
    )
    live = sim.app_json(app_id)["active_deployment"]["spec"]["workers"][0]["envs"][0]["value"]
    assert live == "v1"
    assert sim.apps[app_id].pinned is None, "the rollback was committed"


def test_per_component_images_come_from_image_digest_variables_held_to_the_gate(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    app_id = sim.seed_app("shop", version="v1", services=("web",), workers=("mail-sender",), jobs=("migrate",))
    digest, job_digest = "sha256:" + "cd" * 32, "sha256:" + "ef" * 32
    images = {"IMAGE_DIGEST_MAIL_SENDER": digest, "IMAGE_DIGEST_MIGRATE": job_digest}
    done = deploy(tmp_path, sim, app_id, pg_dsn, "v2", deployment_extra={"do_component": "web"}, env=images)
    assert done.exit_code == 0, done.result and done.result.error
    spec = sim.app_json(app_id)["spec"]
    assert spec["services"][0]["image"]["digest"] == "sha256:" + "ab" * 32, "the image input still goes to web"
    assert spec["workers"][0]["image"] == {"registry_type": "DOCR", "repository": "shop", "digest": digest}
    assert spec["jobs"][0]["image"] == {"registry_type": "DOCR", "repository": "shop", "digest": job_digest}
    assert live_version(sim, app_id) == "v2"
    assert done.result is not None
    assert done.result.to_dict()["artifacts"]["component_images"] == images


def test_a_component_image_other_than_the_validated_one_is_refused(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    app_id = sim.seed_app("shop", version="v1", services=("web",), workers=("mail-sender",))
    validated = {"IMAGE_DIGEST_MAIL_SENDER": "sha256:" + "cd" * 32}
    swapped = {"IMAGE_DIGEST_MAIL_SENDER": "sha256:" + "66" * 32}
    done = deploy(
        tmp_path,
        sim,
        app_id,
        pg_dsn,
        "v2",
        deployment_extra={"do_component": "web"},
        env=swapped,
        validated_env=validated,
    )
    assert done.exit_code == 3
    assert "component_image IMAGE_DIGEST_MAIL_SENDER: changed" in ((done.result and done.result.error) or "")
    assert sim.count("PUT") == 0 and sim.count("POST") == 0
    assert live_version(sim, app_id) == "v1"


def test_a_component_image_given_by_tag_is_refused_even_when_validated(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    app_id = sim.seed_app("shop", version="v1", services=("web",), jobs=("migrate",))
    done = deploy(
        tmp_path, sim, app_id, pg_dsn, "v2", deployment_extra={"do_component": "web"}, env={"IMAGE_TAG_MIGRATE": "1.4"}
    )
    assert done.exit_code == 3
    error = (done.result and done.result.error) or ""
    assert "IMAGE_TAG_MIGRATE=1.4: a tag can be moved to other content" in error
    assert "pass the image's digest as IMAGE_DIGEST_MIGRATE" in error
    assert sim.count("PUT") == 0 and sim.count("POST") == 0


def test_a_malformed_component_digest_is_a_config_error(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app_id = sim.seed_app("shop", version="v1", services=("web",), workers=("mail-sender",))
    config = base_config()
    config["deployment_config"] = {"strategy": "blue_green", "platform": "digitalocean", "do_app_id": app_id}
    config["artifacts"]["docker_image"] = IMAGE
    write_config(tmp_path, config)
    env = {
        "GITHUB_WORKSPACE": str(tmp_path),
        "DATABASE_URL": pg_dsn,
        "DIGITALOCEAN_TOKEN": sim.token,
        "DIGITALOCEAN_API_URL": sim.url,
        "DIGITALOCEAN_CA_BUNDLE": sim.ca_bundle,
        "IMAGE_DIGEST_MAIL_SENDER": "latest",
    }
    done = execute({"config": "deploy.json", "version": "v2", "validation-run-id": "run-v2"}, env)
    assert done.exit_code == 2
    assert "IMAGE_DIGEST_MAIL_SENDER: 'latest' is not an image digest" in capsys.readouterr().err
    assert sim.count("PUT") == 0 and sim.count("POST") == 0


def test_a_recovery_whose_rollback_deployment_fails_leaves_the_app_unpinned(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    """A run killed right after v2 went live; the recovery's rollback to v1 fails on App Platform.
    The recovery fails (and says so), but it settles the rollback: the next deploy is not refused."""
    import subprocess
    import sys

    app_id = sim.seed_app("shop", version="v1")
    assert deploy(tmp_path, sim, app_id, pg_dsn, "v1b").exit_code == 0  # a verified good release to return to
    assert deploy(tmp_path, sim, app_id, pg_dsn, "v2", mode="plan").exit_code == 0  # seeds run-v2's digests
    env = {
        "PATH": "/usr/bin:/bin",
        "GITHUB_WORKSPACE": str(tmp_path),
        "DATABASE_URL": pg_dsn,
        "DIGITALOCEAN_TOKEN": sim.token,
        "DIGITALOCEAN_API_URL": sim.url,
        "DIGITALOCEAN_CA_BUNDLE": sim.ca_bundle,
        "DEPLOY_ORCHESTRATOR_CRASH_AT": "after-start",
        "DEPLOY_ORCHESTRATOR_CRASH_TEST": "kill-this-process",
    }
    main = "import sys; from orchestrator.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["--config", "deploy.json", "--version", "v2", "--validation-run-id", "run-v2"]
    killed = subprocess.run([sys.executable, "-c", main, *args], env=env, capture_output=True, timeout=120, check=False)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert live_version(sim, app_id) == "v2"

    sim.fail_next_rollback = "container exited with code 137 (out of memory)"
    recovered = deploy(tmp_path, sim, app_id, pg_dsn, "v2", mode="recover")
    assert recovered.exit_code == 1
    assert sim.count("POST", r".*/rollback$") == 1 and sim.count("POST", r".*/rollback/revert$") == 1
    assert sim.apps[app_id].pinned is None, "the failed rollback was reverted, not left pinned"
    assert deploy(tmp_path, sim, app_id, pg_dsn, "v3").exit_code == 0
