"""Git-source apps on App Platform: a deploy builds the branch, held to the commit that was validated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.artifacts import digest_artifacts
from orchestrator.cli import Execution, execute
from orchestrator.config import parse_config
from tests.peers.do_simulator import DoSimulator
from tests.peers.verdicts import seed_passed
from tests.workspace import base_config, write_config

REPO = "acme/shop"
GIT = {"github": {"repo": REPO, "branch": "main", "deploy_on_push": True}}
VALIDATED = "a1" * 20
PUSHED_LATER = "b2" * 20


def make_sim(deploying: float = 0.1) -> DoSimulator:
    return DoSimulator(phases={"PENDING_BUILD": 0.05, "BUILDING": 0.1, "PENDING_DEPLOY": 0.05, "DEPLOYING": deploying})


@pytest.fixture
def sim() -> Iterator[DoSimulator]:
    simulator = make_sim()
    yield simulator
    simulator.close()
    assert simulator.violations == [], "\n".join(simulator.violations)


def deploy(
    tmp_path: Path, sim: DoSimulator, app_id: str, dsn: str, version: str, *, validated: str = VALIDATED, **env: str
) -> Execution:
    config: dict[str, Any] = base_config()
    config["deployment_config"] = {"strategy": "blue_green", "platform": "digitalocean", "do_app_id": app_id}
    config["health_check"].update(retries=2, interval_seconds=0.1)
    write_config(tmp_path, config)
    digests = digest_artifacts(parse_config(config, tmp_path).artifacts, tmp_path, source_commit=validated)
    seed_passed(dsn, f"run-{version}", digests)
    environment = {
        "GITHUB_WORKSPACE": str(tmp_path),
        "DATABASE_URL": dsn,
        "DIGITALOCEAN_TOKEN": sim.token,
        "DIGITALOCEAN_API_URL": sim.url,
        "DIGITALOCEAN_CA_BUNDLE": sim.ca_bundle,
        "GITHUB_SHA": VALIDATED,
        **env,
    }
    return execute({"config": "deploy.json", "version": version, "validation-run-id": f"run-{version}"}, environment)


def live_version(sim: DoSimulator, app_id: str) -> str:
    return requests.get(sim.app_json(app_id)["live_url"] + "/version", timeout=5).text


def built_from(sim: DoSimulator, app_id: str) -> str:
    return str(sim.app_json(app_id)["active_deployment"]["services"][0]["source_commit_hash"])


def seeded(sim: DoSimulator) -> str:
    sim.git_push(REPO, "main", "0f" * 20)
    app_id = sim.seed_app("shop", version="v1", git=GIT)
    sim.git_push(REPO, "main", VALIDATED)  # deploy_on_push is on: App Platform builds it by itself
    sim.wait_settled(app_id)  # the run must find that deployment live, not still building
    return app_id


def test_a_git_source_app_is_built_from_the_validated_commit(tmp_path: Path, sim: DoSimulator, pg_dsn: str) -> None:
    app_id = seeded(sim)
    done = deploy(tmp_path, sim, app_id, pg_dsn, "v2")
    assert done.exit_code == 0, done.result and done.result.error
    assert live_version(sim, app_id) == "v2"
    assert built_from(sim, app_id) == VALIDATED
    spec = sim.app_json(app_id)["spec"]["services"][0]
    assert spec["github"] == {"repo": REPO, "branch": "main", "deploy_on_push": False}, (
        "no push deploys behind the gate"
    )
    assert "image" not in spec
    assert done.result is not None and done.result.to_dict()["artifacts"]["source_commit"] == VALIDATED
    sim.git_push(REPO, "main", PUSHED_LATER)
    assert built_from(sim, app_id) == VALIDATED, "a later push no longer deploys by itself"


def test_a_commit_other_than_the_validated_one_is_refused_by_the_gate(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    app_id = seeded(sim)
    done = deploy(tmp_path, sim, app_id, pg_dsn, "v2", GITHUB_SHA=PUSHED_LATER)
    assert done.exit_code == 3
    assert f"source_commit source commit: changed, validated {VALIDATED}, now {PUSHED_LATER}" in (
        (done.result and done.result.error) or ""
    )
    assert sim.count("PUT") == 0


def test_a_branch_that_moved_after_validation_is_cancelled_before_it_goes_live(tmp_path: Path, pg_dsn: str) -> None:
    sim = make_sim(deploying=30.0)
    try:
        sim.git_push(REPO, "main", "0f" * 20)
        app_id = sim.seed_app("shop", version="v1", git={"github": {"repo": REPO, "branch": "main"}})
        sim.git_push(REPO, "main", PUSHED_LATER)  # pushed after the validation of VALIDATED
        done = deploy(tmp_path, sim, app_id, pg_dsn, "v2")
        assert done.exit_code == 1
        assert done.result is not None and done.result.status == "failed", done.result.error
        error = done.result.error or ""
        assert f"App Platform built web from {PUSHED_LATER}, not the validated commit {VALIDATED}" in error
        assert "was cancelled before it went live" in error
        assert sim.deployments(app_id)[0]["phase"] == "CANCELED"
        assert live_version(sim, app_id) == "v1"
        assert not done.result.rollback.triggered
    finally:
        sim.close()
    assert sim.violations == []


def test_a_release_built_from_another_commit_that_went_live_is_rolled_back_at_once(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    sim.git_push(REPO, "main", "0f" * 20)
    app_id = sim.seed_app("shop", version="v1", git={"github": {"repo": REPO, "branch": "main"}})
    sim.git_push(REPO, "main", PUSHED_LATER)
    done = deploy(tmp_path, sim, app_id, pg_dsn, "v2")
    assert done.exit_code == 1
    error = (done.result and done.result.error) or ""
    assert "it went live for a moment and was rolled back to v1" in error
    assert done.result is not None
    messages = [entry.message for entry in done.result.logs]
    assert any(m.endswith("v2 went live and digitalocean returned traffic to v1 at once") for m in messages)
    assert not any("never went live" in m for m in messages), "it did go live: saying otherwise misleads"
    rollback = done.result.rollback
    assert done.result.status == "rolled_back" and rollback.triggered and rollback.succeeded
    assert rollback.previous_version == "v1", "v1, returned to by the platform, was verified by the rollback"
    assert any(p.phase == "rollback re-check" and p.passed for p in done.result.health_checks)
    assert live_version(sim, app_id) == "v1"
    assert built_from(sim, app_id) == "0f" * 20
    assert sim.apps[app_id].pinned is None, "the rollback was committed"


def test_a_git_source_deploy_without_a_known_commit_touches_nothing(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    app_id = seeded(sim)
    done = deploy(tmp_path, sim, app_id, pg_dsn, "v2", validated=None, GITHUB_SHA="")  # type: ignore[arg-type]
    assert done.exit_code == 2
    assert "build from git, and App Platform builds whatever the branch holds" in (
        (done.result and done.result.error) or ""
    )
    assert sim.count("PUT") == 0


def test_a_validation_run_that_recorded_no_commit_vouches_for_none(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    """In Actions (GITHUB_SHA set) a run that recorded no commit is no licence to build whatever
    commit the deploy names: git-built components are refused, nothing touched."""
    app_id = seeded(sim)
    done = deploy(tmp_path, sim, app_id, pg_dsn, "v2", validated=None)  # type: ignore[arg-type]
    assert done.exit_code == 2, done.result and done.result.error
    assert "no validated commit is known" in ((done.result and done.result.error) or "")
    assert sim.count("PUT") == 0 and built_from(sim, app_id) == VALIDATED


def test_an_image_app_deploys_in_actions_when_the_validation_run_recorded_no_commit(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    """An app that runs images builds nothing from git: the commit is no artifact of it."""
    app_id = sim.seed_app("shop", version="v1")
    done = deploy(tmp_path, sim, app_id, pg_dsn, "v2", validated=None)  # type: ignore[arg-type]
    assert done.exit_code == 0, done.result and done.result.error
    assert live_version(sim, app_id) == "v2"


PREVIEW_SPEC = """\
name: shop
region: ams
services:
  - name: web
    http_port: 8080
    instance_count: 1
    github: {repo: acme/shop, branch: main, deploy_on_push: true}
    envs:
      - {key: COLOUR, value: "${COLOUR}", scope: RUN_TIME}
"""


def test_a_preview_builds_the_pull_requests_branch_from_the_repositorys_spec(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    import json

    head = "c3" * 20
    sim.git_push(REPO, "main", "0f" * 20)
    sim.seed_app("shop", version="v1", git=GIT)
    sim.git_push(REPO, "feature/blue", head)
    (tmp_path / ".do").mkdir()
    (tmp_path / ".do" / "app.yaml").write_text(PREVIEW_SPEC)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"number": 7, "pull_request": {"number": 7, "head": {"sha": head}}}))
    config: dict[str, Any] = base_config()
    config["deployment_config"] = {"strategy": "blue_green", "platform": "digitalocean"}
    config["artifacts"]["app_spec"] = ".do/app.yaml"
    config["health_check"].update(retries=2, interval_seconds=0.1)
    write_config(tmp_path, config)
    env = {"COLOUR": "blue"}
    artifacts = parse_config(config, tmp_path).artifacts
    seed_passed(pg_dsn, "run-pr7", digest_artifacts(artifacts, tmp_path, env=env, source_commit=head))
    environment = {
        "GITHUB_WORKSPACE": str(tmp_path),
        "DATABASE_URL": pg_dsn,
        "DIGITALOCEAN_TOKEN": sim.token,
        "DIGITALOCEAN_API_URL": sim.url,
        "DIGITALOCEAN_CA_BUNDLE": sim.ca_bundle,
        "GITHUB_SHA": "d4" * 20,  # the merge commit of a pull_request event: not what is built
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_HEAD_REF": "feature/blue",
        "GITHUB_REPOSITORY": "Acme/Shop",
        **env,
    }
    raw = {"config": "deploy.json", "version": "pr7-1", "validation-run-id": "run-pr7", "mode": "preview"}
    done = execute(raw, environment)
    assert done.exit_code == 0, done.result and done.result.error
    preview = sim.find_app("acme-shop-7-merge-1b740c92")
    assert preview is not None
    app = sim.app_json(preview)
    web = app["spec"]["services"][0]
    assert web["github"] == {"repo": REPO, "branch": "feature/blue", "deploy_on_push": False}
    assert {e["key"]: e["value"] for e in web["envs"]}["COLOUR"] == "blue", "the repository's spec, filled in"
    assert app["active_deployment"]["services"][0]["source_commit_hash"] == head
    assert done.result is not None and done.result.url == app["live_url"]
