"""`deploy-orchestrator digests`: the JSON the upstream services store; `--sql` seeds a real store through psql."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.artifacts import digest_artifacts
from orchestrator.config import parse_config
from orchestrator.contract import GatesConfig
from orchestrator.gates import check_gates
from orchestrator.redaction import Secret
from orchestrator.store import DatabaseVerdicts
from tests.workspace import base_config, write_config

_MAIN = "import sys; from orchestrator.cli import main; sys.exit(main(sys.argv[1:]))"
_PLAN = ("--validation-run-id", "laptop-1", "--mode", "plan")


def _workspace(root: Path) -> dict[str, Any]:
    (root / "db").mkdir()
    (root / "db" / "V1__orders.sql").write_text("CREATE TABLE orders (id bigserial PRIMARY KEY, note text);\n")
    (root / "db" / "U1__orders.sql").write_text("DROP TABLE orders;\n")
    (root / "db" / "V2__it's.sql").write_text("COMMENT ON TABLE orders IS 'the customer''s orders';\n")
    config = base_config()
    config["artifacts"]["migrations"] = ["db"]
    config["migrations"] = {"irreversible": ["V2__it's.sql"]}
    write_config(root, config)
    return config


def _digests(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _MAIN, "digests", "--config", "deploy.json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "GITHUB_WORKSPACE": str(root), **(env or {})},
        check=False,
    )


def test_digests_prints_the_rows_each_upstream_agent_must_write(tmp_path: Path) -> None:
    config = _workspace(tmp_path)
    done = _digests(tmp_path, "--validation-run-id", "laptop-1", "--sqlagent-run-id", "sqlagent-1")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    expected = digest_artifacts(parse_config(config, tmp_path).artifacts, tmp_path).to_dict()
    assert data["artifact_digests"] == expected
    assert data["validation_run"] == {
        "id": "laptop-1",
        "status": "passed",
        "agent_id": "agent_005",
        "artifact_digests": expected,
    }
    assert data["compliance_verdict"] == {
        "validation_run_id": "laptop-1",
        "validator_id": "agent_002",
        "verdict": "compliant",
        "artifact_digests": expected,
    }
    sha = expected["migrations"]
    assert data["sqlagent_migrations"] == [
        {
            "sqlagent_run_id": "sqlagent-1",
            "agent_id": "agent_004",
            "filename": "V1__orders.sql",
            "version": "1",
            "sha256": sha["db/V1__orders.sql"],
            "undo_filename": "U1__orders.sql",
            "undo_sha256": sha["db/U1__orders.sql"],
        },
        {
            "sqlagent_run_id": "sqlagent-1",
            "agent_id": "agent_004",
            "filename": "V2__it's.sql",
            "version": "2",
            "sha256": sha["db/V2__it's.sql"],
            "undo_filename": None,
            "undo_sha256": None,
        },
    ]


def test_digests_sql_through_psql_seeds_a_store_the_gates_accept(tmp_path: Path, pg_dsn: str) -> None:
    psql = shutil.which("psql")
    assert psql, "psql is needed: apt-get install postgresql-client"
    _workspace(tmp_path)
    done = _digests(tmp_path, "--validation-run-id", "laptop-1", "--sql")
    assert done.returncode == 0, done.stderr
    for _ in range(2):  # idempotent: seeding twice is fine
        loaded = subprocess.run(
            [psql, pg_dsn, "-v", "ON_ERROR_STOP=1", "-q", "-f", "-"],
            input=done.stdout,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert loaded.returncode == 0, loaded.stderr
    config = parse_config(json.loads((tmp_path / "deploy.json").read_text()), tmp_path)
    digests = digest_artifacts(config.artifacts, tmp_path)
    report = check_gates("laptop-1", digests, DatabaseVerdicts(Secret(pg_dsn), timeout=5), GatesConfig())
    assert set(report.provenance.files) == {"V1__orders.sql", "U1__orders.sql", "V2__it's.sql"}
    (run,) = report.provenance.sqlagent_run_ids
    assert run.startswith("sqlagent-")
    # The README's laptop flow goes on with `run --mode plan`: the gates pass on what psql recorded.
    planned = subprocess.run(
        [sys.executable, "-c", _MAIN, "run", "--config", "deploy.json", "--version", "v2", *_PLAN],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "GITHUB_WORKSPACE": str(tmp_path), "DATABASE_URL": pg_dsn},
        check=False,
    )
    assert planned.returncode == 0, planned.stderr[-3000:]
    assert "SQLAgent (agent_004) must have recorded V1__orders.sql" in planned.stderr + planned.stdout


@pytest.mark.parametrize("problem", ["missing config", "bad migration path"])
def test_digests_with_bad_input_exits_2_naming_the_field(tmp_path: Path, problem: str) -> None:
    config = _workspace(tmp_path)
    if problem == "missing config":
        (tmp_path / "deploy.json").unlink()
        expected = "config: deploy.json not found"
    else:
        config["artifacts"]["migrations"] = ["nowhere"]
        write_config(tmp_path, config)
        expected = "artifacts.migrations[0]: 'nowhere' does not exist"
    done = _digests(tmp_path)
    assert done.returncode == 2
    assert expected in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_digests_of_a_digitalocean_deploy_cover_the_filled_in_spec_and_component_images(tmp_path: Path) -> None:
    (tmp_path / ".do").mkdir()
    (tmp_path / ".do" / "app.yaml").write_text(
        "name: shop\nservices:\n  - name: web\n    envs:\n"
        '      - {key: GREETING, value: "${GREETING}"}\n'
        '      - {key: TOKEN, value: "${TOKEN}", type: SECRET}\n'
    )
    config = base_config()
    config["deployment_config"] = {"strategy": "blue_green", "platform": "digitalocean"}
    config["artifacts"]["app_spec"] = ".do/app.yaml"
    write_config(tmp_path, config)
    env = {"GREETING": "hello", "TOKEN": "tok-3c1e9a77", "IMAGE_DIGEST_WORKER": "sha256:" + "cd" * 32}
    done = _digests(tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)["artifact_digests"]
    assert data["app_spec_values"] == {
        "GREETING": "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        "TOKEN": "secret",
    }
    assert data["component_images"] == {"IMAGE_DIGEST_WORKER": "sha256:" + "cd" * 32}
    assert "tok-3c1e9a77" not in done.stdout + done.stderr
