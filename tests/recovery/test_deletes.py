"""A delete (mode delete) killed mid-way is finished, or reported, by the next run on the platform.

Real pydo against the App Platform simulator, real PostgreSQL; the delete runs in a subprocess
killed by SIGKILL at an exact point: a crash point, or while its request to the API is held open.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from orchestrator.cli import Execution, execute
from orchestrator.ledger.database import LedgerError
from orchestrator.platforms.base import DeletedApp
from orchestrator.recovery.deletes import target_recorder
from orchestrator.redaction import Secret
from tests.peers.do_simulator import DoSimulator, Fault
from tests.workspace import base_config, write_config

_MAIN = "import sys; from orchestrator.cli import main; sys.exit(main(sys.argv[1:]))"
_REPO = str(Path(__file__).resolve().parents[2])


@pytest.fixture
def sim() -> Iterator[DoSimulator]:
    simulator = DoSimulator()
    yield simulator
    simulator.close()
    assert simulator.violations == [], "\n".join(simulator.violations)


def _env(tmp_path: Path, sim: DoSimulator, dsn: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": _REPO,
        "GITHUB_WORKSPACE": str(tmp_path),
        "DATABASE_URL": dsn,
        "DIGITALOCEAN_TOKEN": sim.token,
        "DIGITALOCEAN_API_URL": sim.url,
        "DIGITALOCEAN_CA_BUNDLE": sim.ca_bundle,
    }


def _configure(tmp_path: Path, production: str) -> None:
    config = base_config()
    config["deployment_config"] = {"strategy": "blue_green", "platform": "digitalocean", "do_app_id": production}
    write_config(tmp_path, config)


def _deleting(tmp_path: Path, sim: DoSimulator, dsn: str, app_name: str, **env: str) -> subprocess.Popen[bytes]:
    args = ["--config", "deploy.json", "--mode", "delete", "--app-name", app_name]
    with (tmp_path / "orchestrator.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", _MAIN, *args],
            cwd=tmp_path,
            env={**_env(tmp_path, sim, dsn), **env},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def _crash_at(tmp_path: Path, sim: DoSimulator, dsn: str, app_name: str, point: str) -> None:
    armed = {"DEPLOY_ORCHESTRATOR_CRASH_TEST": "kill-this-process", "DEPLOY_ORCHESTRATOR_CRASH_AT": point}
    code = _deleting(tmp_path, sim, dsn, app_name, **armed).wait(120)
    assert code == -signal.SIGKILL, f"meant to die at {point}, exited {code}: see {tmp_path / 'orchestrator.log'}"


def _recover(tmp_path: Path, sim: DoSimulator, dsn: str) -> Execution:
    return execute({"config": "deploy.json", "mode": "recover"}, _env(tmp_path, sim, dsn))


def _rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT status, failed_step, error, recovery FROM deployment_log WHERE mode = 'delete' ORDER BY started_at"
        )
        return list(cur.fetchall())


def test_a_delete_killed_before_its_delete_request_is_finished_by_the_next_run(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    production = sim.seed_app("shop")
    review = sim.seed_app("shop-review-42")
    _configure(tmp_path, production)
    _crash_at(tmp_path, sim, pg_dsn, "shop-review-42", "before-delete")
    assert review in sim.apps and sim.count("DELETE") == 0, "it died with the app found and recorded, not deleted"
    [(status, _, _, _)] = _rows(pg_dsn)
    assert status == "in_progress"
    summary = tmp_path / "summary.md"

    env = {**_env(tmp_path, sim, pg_dsn), "GITHUB_STEP_SUMMARY": str(summary)}
    done = execute({"config": "deploy.json", "mode": "recover"}, env)

    assert done.exit_code == 0, done.result and done.result.error
    assert review not in sim.apps and production in sim.apps
    assert done.result is not None
    [finished] = done.result.to_dict()["recovered_deletes"]
    assert finished["outcome"] == "deleted" and finished["app_id"] == review
    assert finished["note"] == f"app shop-review-42 ({review}) deleted now, finishing it"
    [(status, failed_step, error, recovery)] = _rows(pg_dsn)
    assert (status, failed_step) == ("crashed", "delete")
    assert error.startswith("the run's process died during step 'delete'; app shop-review-42")
    assert recovery["delete"]["outcome"] == "deleted"
    assert f"app shop-review-42 ({review}) deleted now" in summary.read_text()

    again = _recover(tmp_path, sim, pg_dsn)
    assert again.exit_code == 0 and again.result is not None
    assert "recovered_deletes" not in again.result.to_dict(), "a settled delete is never finished twice"


def test_a_delete_killed_after_its_request_is_settled_and_an_app_made_since_under_its_name_is_kept(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    production = sim.seed_app("shop")
    review = sim.seed_app("shop-review-7")
    _configure(tmp_path, production)
    _crash_at(tmp_path, sim, pg_dsn, "shop-review-7", "after-delete")
    assert review not in sim.apps
    remade = sim.seed_app("shop-review-7")  # the pull request opened again: a new preview, same name

    done = _recover(tmp_path, sim, pg_dsn)

    assert done.exit_code == 0, done.result and done.result.error
    assert remade in sim.apps, "the recovery deletes the app the dead run found, by id, never by name"
    assert done.result is not None
    [finished] = done.result.to_dict()["recovered_deletes"]
    assert finished["outcome"] == "already gone"
    assert finished["note"] == f"app shop-review-7 ({review}) is gone (its DELETE went through)"
    [(status, _, _, _)] = _rows(pg_dsn)
    assert status == "crashed"


def test_a_delete_killed_before_it_found_the_app_is_reported_as_nothing_deleted(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    production = sim.seed_app("shop")
    review = sim.seed_app("shop-review-9")
    _configure(tmp_path, production)
    sim.add_fault(Fault("GET", "/v2/apps", delay=10.0))  # holds the lookup of the app by name
    dying = _deleting(tmp_path, sim, pg_dsn, "shop-review-9")
    until = time.monotonic() + 120
    while ("GET", "/v2/apps") not in sim.calls:
        assert dying.poll() is None and time.monotonic() < until, "the delete never looked the app up"
        time.sleep(0.01)
    dying.send_signal(signal.SIGKILL)
    assert dying.wait(30) == -signal.SIGKILL
    assert review in sim.apps

    done = _recover(tmp_path, sim, pg_dsn)

    assert done.exit_code == 0, done.result and done.result.error
    assert review in sim.apps, "nothing was recorded, so nothing is deleted behind the user's back"
    assert done.result is not None
    [finished] = done.result.to_dict()["recovered_deletes"]
    assert finished["outcome"] == "nothing deleted"
    assert "run the delete again" in finished["note"]
    [(status, _, error, _)] = _rows(pg_dsn)
    assert status == "crashed" and "it died before it had found the app to delete" in error


def test_a_delete_that_cannot_be_finished_now_is_left_for_the_run_after(
    tmp_path: Path, sim: DoSimulator, pg_dsn: str
) -> None:
    production = sim.seed_app("shop")
    review = sim.seed_app("shop-review-3")
    _configure(tmp_path, production)
    _crash_at(tmp_path, sim, pg_dsn, "shop-review-3", "before-delete")
    sim.add_fault(Fault("DELETE", f"/v2/apps/{review}", status=403))

    first = _recover(tmp_path, sim, pg_dsn)

    assert first.exit_code == 0, "production is fine: a review app's delete never fails the run"
    assert first.result is not None
    [finished] = first.result.to_dict()["recovered_deletes"]
    assert finished["outcome"] == "left" and "the next run tries again" in finished["note"]
    assert review in sim.apps
    [(status, _, _, _)] = _rows(pg_dsn)
    assert status == "in_progress"

    other = sim.seed_app("shop-review-4")
    second = _deleting(tmp_path, sim, pg_dsn, "shop-review-4")  # any later run on the platform
    assert second.wait(120) == 0, f"see {tmp_path / 'orchestrator.log'}"
    assert review not in sim.apps and other not in sim.apps
    [(status, _, _, recovery), _] = _rows(pg_dsn)
    assert status == "crashed" and recovery["delete"]["outcome"] == "deleted"


def test_a_delete_whose_app_cannot_be_recorded_deletes_nothing(pg_dsn: str) -> None:
    record = target_recorder(Secret(pg_dsn), "no-such-run", schema="public")
    with pytest.raises(LedgerError) as refused:
        record(DeletedApp(id="a1b2", name="shop-review-1"))
    assert str(refused.value).startswith(
        "delete: app shop-review-1 (a1b2) was not deleted: recording which app this run deletes"
    )
    assert "no in-progress ledger row" in str(refused.value)


def test_a_delete_on_the_local_platform_leaves_nothing_to_recover(
    tmp_path: Path, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The local platform has no apps to delete: mode delete is refused while the inputs are read
    (exit 2), before a ledger row exists, so no crash can leave a delete there half done."""
    write_config(tmp_path, base_config())
    env = {"GITHUB_WORKSPACE": str(tmp_path), "DATABASE_URL": pg_dsn}
    refused = execute({"config": "deploy.json", "mode": "delete", "app-name": "shop"}, env)
    assert refused.exit_code == 2
    assert "has no apps to delete by id or name" in capsys.readouterr().err
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('deployment_log')")
        assert cur.fetchone() == (None,), "not even the ledger was touched"
