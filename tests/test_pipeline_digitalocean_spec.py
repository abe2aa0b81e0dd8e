"""An App Platform app spec from the repository (app_action's `.do/app.yaml`): created, updated, gated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.artifacts import digest_artifacts
from orchestrator.cli import Execution, execute
from orchestrator.config import parse_config
from orchestrator.errors import ConfigError
from orchestrator.platforms.digitalocean.spec_file import load_app_spec, substitute
from tests.peers.do_simulator import DoSimulator
from tests.peers.verdicts import seed_passed
from tests.workspace import base_config, write_config

IMAGE = "registry.digitalocean.com/acme/shop@sha256:" + "ab" * 32
SPEC = """\
name: shop-from-repo
region: ams
services:
  - name: web
    http_port: 8080
    instance_count: 1
    instance_size_slug: apps-s-1vcpu-0.5gb
    image: {registry_type: DOCR, repository: shop, tag: latest}
    envs:
      - {key: DATABASE_URL, value: "${db.DATABASE_URL}", scope: RUN_TIME}
      - {key: PUBLIC_URL, value: "${APP_URL}/shop", scope: RUN_TIME}
      - {key: SELF, value: "${_self.PRIVATE_URL}", scope: RUN_TIME}
      - {key: GREETING, value: "${GREETING}: welcome", scope: RUN_TIME}
"""


@pytest.fixture
def sim() -> Iterator[DoSimulator]:
    simulator = DoSimulator(phases={"PENDING_BUILD": 0.05, "BUILDING": 0.1, "PENDING_DEPLOY": 0.05, "DEPLOYING": 0.1})
    yield simulator
    simulator.close()
    assert simulator.violations == [], "\n".join(simulator.violations)


def deploy(tmp_path: Path, sim: DoSimulator, dsn: str, version: str, *, seed: bool = True, **env: str) -> Execution:
    config: dict[str, Any] = base_config()
    config["deployment_config"] = {"strategy": "blue_green", "platform": "digitalocean", "do_project_id": "proj-7"}
    config["artifacts"].update(docker_image=IMAGE, app_spec=".do/app.yaml")
    config["health_check"].update(retries=2, interval_seconds=0.1)
    write_config(tmp_path, config)
    if seed:
        seed_passed(dsn, f"run-{version}", digest_artifacts(parse_config(config, tmp_path).artifacts, tmp_path))
    environment = {
        "GITHUB_WORKSPACE": str(tmp_path),
        "DATABASE_URL": dsn,
        "DIGITALOCEAN_TOKEN": sim.token,
        "DIGITALOCEAN_API_URL": sim.url,
        "DIGITALOCEAN_CA_BUNDLE": sim.ca_bundle,
        "AGENTBENCH_TOKEN": "t0ken-canary-do",
        **env,
    }
    raw = {"config": "deploy.json", "version": version, "validation-run-id": f"run-{version}"}
    return execute(raw, environment)


def write_spec(tmp_path: Path, text: str = SPEC) -> None:
    (tmp_path / ".do").mkdir(exist_ok=True)
    (tmp_path / ".do" / "app.yaml").write_text(text)


def test_the_repositorys_spec_creates_the_app_then_updates_it(tmp_path: Path, sim: DoSimulator, pg_dsn: str) -> None:
    write_spec(tmp_path)
    first = deploy(tmp_path, sim, pg_dsn, "v1", GREETING="hello")
    assert first.exit_code == 0, first.result and first.result.error
    app_id = sim.find_app("shop-from-repo")
    assert app_id is not None and sim.apps[app_id].project_id == "proj-7"
    envs = {e["key"]: e["value"] for e in sim.app_json(app_id)["spec"]["services"][0]["envs"]}
    assert envs["GREETING"] == "hello: welcome"
    assert envs["DATABASE_URL"] == "${db.DATABASE_URL}", "bindable variables reach App Platform intact"
    assert envs["PUBLIC_URL"] == "${APP_URL}/shop" and envs["SELF"] == "${_self.PRIVATE_URL}"
    assert sim.app_json(app_id)["spec"]["services"][0]["image"]["digest"] == "sha256:" + "ab" * 32
    assert first.result is not None and first.result.to_dict()["artifacts"]["app_spec"][".do/app.yaml"]

    write_spec(tmp_path, SPEC.replace("instance_count: 1", "instance_count: 2"))
    second = deploy(tmp_path, sim, pg_dsn, "v2", GREETING="hello")
    assert second.exit_code == 0, second.result and second.result.error
    assert sim.count("POST", "/v2/apps") == 1 and sim.count("PUT") == 1
    assert sim.app_json(app_id)["spec"]["services"][0]["instance_count"] == 2, "the repository's change applied"
    url = sim.app_json(app_id)["live_url"]
    assert requests.get(url + "/version", timeout=5).text == "v2"


def test_a_spec_changed_after_validation_is_refused_by_the_gate(tmp_path: Path, sim: DoSimulator, pg_dsn: str) -> None:
    write_spec(tmp_path)
    config: dict[str, Any] = base_config()
    config["deployment_config"] = {"strategy": "blue_green", "platform": "digitalocean"}
    config["artifacts"].update(docker_image=IMAGE, app_spec=".do/app.yaml")
    seed_passed(pg_dsn, "run-v1", digest_artifacts(parse_config(config, tmp_path).artifacts, tmp_path))
    write_spec(tmp_path, SPEC.replace("instance_count: 1", "instance_count: 9"))
    done = deploy(tmp_path, sim, pg_dsn, "v1", seed=False, GREETING="hello")
    assert done.exit_code == 3
    assert done.result is not None and ".do/app.yaml" in (done.result.error or "")
    assert sim.find_app("shop-from-repo") is None, "nothing touched"


def test_an_unset_variable_in_the_spec_is_a_config_error(tmp_path: Path, sim: DoSimulator, pg_dsn: str) -> None:
    write_spec(tmp_path)
    done = deploy(tmp_path, sim, pg_dsn, "v1")
    assert done.exit_code == 2
    assert sim.calls == []
    with pytest.raises(ConfigError, match=r"artifacts.app_spec: .*app.yaml refers to \$\{GREETING\}"):
        load_app_spec(tmp_path / ".do" / "app.yaml", {})


def test_substitution_keeps_bindables_and_cannot_change_the_yaml_structure() -> None:
    missing: list[str] = []
    spec = {"envs": [{"value": "${A}"}, {"value": "${web.HOSTNAME} ${APP_DOMAIN} ${APP_ID}"}], "name": "${B}"}
    filled = substitute(spec, {"A": "x: [1]\nb: 2", "B": "n"}, missing)
    assert filled == {
        "envs": [{"value": "x: [1]\nb: 2"}, {"value": "${web.HOSTNAME} ${APP_DOMAIN} ${APP_ID}"}],
        "name": "n",
    }
    assert missing == []
