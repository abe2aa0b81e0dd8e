"""A canary password with `"`, `\\`, `'`, a space and non-ASCII letters never escapes, on any failure path.

Each case runs the real Action entry against real peers (PostgreSQL, pgbouncer) with the password in
a libpq key=value DSN and in a URL DSN, breaks the run one way (database down, deploy lock
unreachable, transaction pooler refused, migration error, an unexpected traceback), and then looks
for the password everywhere a run writes: stdout (the runner's `::add-mask::` lines aside: they
are how the runner learns what to mask), stderr, GITHUB_OUTPUT, the step summary, the result file,
the outbox fallback file, and the ledger, lineage and outbox rows. It looks for each alphanumeric
run of the password, so a password leaked in any encoding (JSON-escaped, URL-encoded, quoted) or
only in part is caught too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2
import pytest

from orchestrator.artifacts import digest_artifacts
from orchestrator.config import parse_config
from tests.migrations.conftest import PgBouncer
from tests.migrations.conftest import pgbouncer as pgbouncer  # the fixture, for this module too
from tests.peers import postgres
from tests.peers.verdicts import seed_passed
from tests.test_cli import run_entrypoint
from tests.workspace import base_config, write_config

PASSWORD = "Cn4ryA\"Bq7zX\\Wv2kY'Lm8pQ Rt5ßéK"
RUNS = [run for run in re.findall(r"\w+", PASSWORD) if len(run) >= 4]
STYLES = ("key=value", "url")
ROOT = Path(__file__).resolve().parents[2]


def _dsn(style: str, role: str, port: int, database: str) -> str:
    if style == "url":
        return f"postgresql://{role}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/{database}"
    escaped = PASSWORD.replace("\\", "\\\\").replace("'", "\\'")
    return f"host=127.0.0.1 port={port} dbname={database} user={role} password='{escaped}' connect_timeout=5"


@dataclass
class CanaryRole:
    """A login role whose password is the canary, owning the test's database."""

    name: str
    database: str
    server: postgres.PostgresServer

    def dsn(self, style: str, port: int | None = None) -> str:
        return _dsn(style, self.name, port or self.server.port, self.database)


@pytest.fixture
def canary_role(pg_server: postgres.PostgresServer, pg_dsn: str) -> Iterator[CanaryRole]:
    role = CanaryRole(f"canary_{uuid.uuid4().hex[:8]}", pg_dsn.rsplit("/", 1)[1], pg_server)
    conn = psycopg2.connect(pg_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE ROLE {role.name} LOGIN PASSWORD %s", (PASSWORD,))
        cur.execute(f'ALTER DATABASE "{role.database}" OWNER TO {role.name}')
        cur.execute(f"ALTER SCHEMA public OWNER TO {role.name}")
    try:
        yield role
    finally:
        with conn.cursor() as cur:
            cur.execute(f"REASSIGN OWNED BY {role.name} TO {pg_server.user}")
            cur.execute(f"DROP OWNED BY {role.name}")
        conn.close()
        admin = psycopg2.connect(pg_server.dsn("postgres"))
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role.name}'")
            cur.execute(f"DROP ROLE IF EXISTS {role.name}")
        admin.close()


def _workspace(tmp_path: Path, config: dict[str, Any], gates_dsn: str) -> dict[str, str]:
    """Write the config, seed a passed validation run for it, and return the run's env."""
    port = postgres.free_port()
    config["deployment_config"]["local"]["listen"] = f"127.0.0.1:{port}"
    write_config(tmp_path, config)
    seed_passed(gates_dsn, "run-1", digest_artifacts(parse_config(config, tmp_path).artifacts, tmp_path))
    return {"GITHUB_OUTPUT": str(tmp_path / "github-output"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}


def _rows(dsn: str) -> str:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        text = []
        for table in ("hardening_outbox", "deployment_log", "pipeline_lineage"):
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            if cur.fetchone()[0]:
                cur.execute(f"SELECT row_to_json(t)::text FROM {table} t")
                text += [r[0] for r in cur.fetchall()]
    conn.close()
    return "\n".join(text)


def _assert_no_canary(workspace: Path, stdout: str, stderr: str, rows: str = "") -> None:
    places = {
        "stdout": "\n".join(line for line in stdout.splitlines() if not line.startswith("::add-mask::")),
        "stderr": stderr,
        "ledger rows": rows,
    }
    for name in ("github-output", "summary.md", ".deploy-orchestrator/result.json", ".deploy-orchestrator/outbox"):
        path = workspace / name
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file():
                places[str(file.relative_to(workspace))] = file.read_text(encoding="utf-8", errors="replace")
    for place, text in places.items():
        for run in RUNS:
            assert run not in text, f"{run!r} of the canary password leaked into {place}:\n{text[:3000]}"


def _teardown_local(workspace: Path) -> None:
    from orchestrator.platforms.local import supervisor_stop

    config = json.loads((workspace / "deploy.json").read_text())
    local = parse_config(config, workspace).deployment.local
    assert local is not None
    supervisor_stop(local, workspace)


def _run(tmp_path: Path, env: dict[str, str]) -> tuple[int, str, str]:
    try:
        done = run_entrypoint(tmp_path, {"config": "deploy.json", "version": "v1", "validation-run-id": "run-1"}, **env)
    finally:
        _teardown_local(tmp_path)
    assert "Traceback" not in done.stdout + done.stderr
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("style", STYLES)
def test_database_down(tmp_path: Path, style: str) -> None:
    down = _dsn(style, "canary", postgres.free_port(), "shop")
    write_config(tmp_path, base_config(postgres.free_port()))
    env = {"DATABASE_URL": down, "GITHUB_OUTPUT": str(tmp_path / "github-output")}
    env["GITHUB_STEP_SUMMARY"] = str(tmp_path / "summary.md")
    code, out, err = _run(tmp_path, env)
    # The run's liveness lock is the first thing it needs from the database: without it, it stops there.
    assert code == 1
    assert "cannot take the run liveness lock: the ledger database at" in out + err
    assert "Connection refused" in out + err
    _assert_no_canary(tmp_path, out, err)


@pytest.mark.parametrize("style", STYLES)
def test_ledger_unreachable(tmp_path: Path, pg_dsn: str, style: str) -> None:
    config = base_config()
    config["gates"] = {"dsn_env_var": "GATES_DSN"}
    config["ledger"] = {"dsn_env_var": "LEDGER_DSN"}
    env = _workspace(tmp_path, config, pg_dsn)
    env |= {"GATES_DSN": pg_dsn, "DATABASE_URL": pg_dsn}
    env["LEDGER_DSN"] = _dsn(style, "canary", postgres.free_port(), "ledger")
    code, out, err = _run(tmp_path, env)
    assert code == 1
    assert "cannot take the run liveness lock: the ledger database at" in out + err
    assert ("password=***" if style == "key=value" else "canary:***@") in out + err
    _assert_no_canary(tmp_path, out, err, _rows(pg_dsn))


@pytest.mark.parametrize("style", STYLES)
def test_transaction_pooler_refused(
    tmp_path: Path, pg_dsn: str, canary_role: CanaryRole, pgbouncer: Callable[..., PgBouncer], style: str
) -> None:
    bouncer = pgbouncer("transaction", users=[(canary_role.name, PASSWORD)])
    config = base_config()
    config["gates"] = {"dsn_env_var": "GATES_DSN"}
    config["ledger"] = {"dsn_env_var": "LEDGER_DSN"}
    env = _workspace(tmp_path, config, pg_dsn)
    env |= {"GATES_DSN": pg_dsn, "DATABASE_URL": pg_dsn, "LEDGER_DSN": canary_role.dsn(style, bouncer.port)}
    code, out, err = _run(tmp_path, env)
    assert code == 1
    assert "transaction mode" in out + err
    _assert_no_canary(tmp_path, out, err, _rows(pg_dsn))


@pytest.mark.parametrize("style", STYLES)
def test_migration_error(tmp_path: Path, pg_dsn: str, canary_role: CanaryRole, style: str) -> None:
    dsn = canary_role.dsn(style)
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "V1__boom.sql").write_text("CREATE TABLE boom (id int);\nSELECT 1 / 0;\n")
    config = base_config()
    config["artifacts"]["migrations"] = ["db"]
    config["migrations"] = {"irreversible": ["V1__boom.sql"]}
    env = _workspace(tmp_path, config, dsn) | {"DATABASE_URL": dsn}
    code, out, err = _run(tmp_path, env)
    assert code == 1
    assert "division by zero" in out + err
    _assert_no_canary(tmp_path, out, err, _rows(pg_dsn))


_BROKEN_ADAPTER = """
import dataclasses, json, os, sys
from orchestrator.platforms import registry

def broken_adapter(*_):
    dsn = os.environ["DATABASE_URL"]
    raise RuntimeError(f"adapter exploded near {dsn} / {json.dumps({'dsn': dsn})} / {dsn!r}")

# A platform whose factory blows up: the local descriptor with its factory replaced.
found = dict(registry.descriptors())
found["local"] = dataclasses.replace(found["local"], create=broken_adapter)
registry.descriptors = lambda: found
from orchestrator.cli import main
sys.exit(main())
"""


@pytest.mark.parametrize("style", STYLES)
def test_traceback(tmp_path: Path, style: str) -> None:
    """An adapter that fails in a way nobody planned for, quoting the DSN three ways in its message."""
    driver = tmp_path / "driver.py"
    driver.write_text(_BROKEN_ADAPTER)
    write_config(tmp_path, base_config(postgres.free_port()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
    env |= {"GITHUB_WORKSPACE": str(tmp_path), "GITHUB_ACTIONS": "true", "PYTHONPATH": str(ROOT)}
    env |= {"GITHUB_OUTPUT": str(tmp_path / "github-output"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    env |= {"INPUT_CONFIG": "deploy.json", "INPUT_VERSION": "v1"}
    env["DATABASE_URL"] = _dsn(style, "canary", postgres.free_port(), "shop")
    done = subprocess.run([sys.executable, str(driver)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "unexpected error" in done.stderr and "adapter exploded near" in done.stderr
    _assert_no_canary(tmp_path, done.stdout, done.stderr)
