"""mode delete (app_action's delete): another App Platform app removed by id or name, idempotently."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.cli import Execution, execute
from tests.peers.do_simulator import DoSimulator, Fault
from tests.workspace import base_config, write_config


@pytest.fixture
def sim() -> Iterator[DoSimulator]:
    simulator = DoSimulator()
    yield simulator
    simulator.close()
    assert simulator.violations == [], "\n".join(simulator.violations)


def delete(tmp_path: Path, sim: DoSimulator, production: str, dsn: str, **inputs: str) -> Execution:
    config = base_config()
    config["deployment_config"] = {"strategy": "blue_green", "platform": "digitalocean", "do_app_id": production}
    write_config(tmp_path, config)
    env = {
        "GITHUB_WORKSPACE": str(tmp_path),
        "DATABASE_URL": dsn,
        "DIGITALOCEAN_TOKEN": sim.token,
        "DIGITALOCEAN_API_URL": sim.url,
        "DIGITALOCEAN_CA_BUNDLE": sim.ca_bundle,
    }
    return execute({"config": "deploy.json", "mode": "delete", **inputs}, env)


def test_an_app_is_deleted_by_name_and_again_is_nothing_to_do_when_asked(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    production = sim.seed_app("shop")
    review = sim.seed_app("shop-review-42")
    done = delete(tmp_path, sim, production, pg_dsn, **{"app-name": "shop-review-42"})
    assert done.exit_code == 0, done.result and done.result.error
    assert review not in sim.apps and production in sim.apps
    assert done.result is not None
    assert done.result.to_dict()["deleted"] == {
        "app": "name shop-review-42",
        "deleted": True,
        "app_id": review,
        "app_name": "shop-review-42",
    }

    again = delete(tmp_path, sim, production, pg_dsn, **{"app-name": "shop-review-42", "ignore-not-found": "true"})
    assert again.exit_code == 0, again.result and again.result.error
    assert again.result is not None and again.result.to_dict()["deleted"]["deleted"] is False
    assert "delete: there is no app with name shop-review-42; nothing to do (ignore-not-found)" in [
        e.message for e in again.result.logs
    ]

    refused = delete(tmp_path, sim, production, pg_dsn, **{"app-name": "shop-review-42"})
    assert refused.exit_code == 2
    assert refused.result is not None
    assert "app-name: there is no app with name shop-review-42; check the value, or set ignore-not-found: true" in (
        refused.result.error or ""
    )


def test_an_app_is_deleted_by_id_even_when_the_first_answer_is_lost(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    production = sim.seed_app("shop")
    review = sim.seed_app("shop-review-7")
    sim.add_fault(Fault("DELETE", f"/v2/apps/{review}", status=502, after=True))
    done = delete(tmp_path, sim, production, pg_dsn, **{"app-id": review})
    assert done.exit_code == 0, done.result and done.result.error
    assert review not in sim.apps
    assert sim.count("DELETE") == 2, "the DELETE was repeated once, and its 404 read as done"


def test_production_is_never_deleted(tmp_path: Path, sim: DoSimulator, pg_dsn: str) -> None:
    production = sim.seed_app("shop")
    for inputs in ({"app-id": production}, {"app-name": "shop"}):
        done = delete(tmp_path, sim, production, pg_dsn, **inputs)
        assert done.exit_code == 2
        assert done.result is not None and "is the app this config deploys" in (done.result.error or "")
    assert production in sim.apps and sim.count("DELETE") == 0


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "app-id, app-name: mode delete needs exactly one of them"),
        ({"app-id": "0" * 36, "app-name": "x1"}, "app-id, app-name: mode delete needs exactly one of them"),
        ({"app-name": "Bad_Name"}, "app-name: should be an App Platform app name"),
        ({"app-name": "ok-1", "ignore-not-found": "yes"}, "ignore-not-found: 'yes' should be true or false"),
    ],
)
def test_bad_delete_inputs_are_refused_before_anything_is_touched(
    tmp_path: Path,
    sim: DoSimulator,
    pg_dsn: str,
    capsys: pytest.CaptureFixture[str],
    inputs: dict[str, str],
    message: str,
) -> None:
    production = sim.seed_app("shop")
    done = delete(tmp_path, sim, production, pg_dsn, **inputs)
    assert done.exit_code == 2
    assert message in capsys.readouterr().err
    assert sim.calls == []


def test_delete_inputs_outside_mode_delete_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(tmp_path, base_config())
    done = execute({"config": "deploy.json", "app-name": "shop"}, {"GITHUB_WORKSPACE": str(tmp_path)})
    assert done.exit_code == 2
    assert "app-name: only used with mode delete (this run's mode is deploy)" in capsys.readouterr().err


def test_mode_delete_on_a_platform_without_apps_names_what_to_use() -> None:
    from orchestrator.app_delete import run_delete
    from orchestrator.contract import RunInputs
    from orchestrator.errors import ConfigError
    from orchestrator.runlog import RunLog

    inputs = RunInputs(
        mode="delete",
        workspace=Path("."),
        config_path=Path("x"),
        validation_run_id=None,
        version="delete",
        app_name="a1",
    )
    with pytest.raises(ConfigError, match="use mode preview-teardown to remove a pull request's preview"):
        run_delete(object(), inputs, "kubernetes", RunLog(), record=lambda app: None)
