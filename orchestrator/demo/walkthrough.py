"""`deploy-orchestrator demo`: four deploys of a small app on the local platform, end to end.

v1 goes live; v2 adds a migration and goes live; v3 adds another migration but fails its health
check, so traffic, schema and all go back to v2; last, a migration edited after validation is
refused by the gate with nothing touched. Before each deploy the demo writes what the upstream
agents would: the SQLAgent's record of every migration, a passed validation run, a verdict.
Everything runs on this machine: an embedded PostgreSQL (the `pgserver` wheel) unless
DATABASE_URL is set, the local supervisor and proxy, and a small agentbench receiver for the
preference pair. Everything started is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import psycopg2
import requests

from orchestrator.artifacts import digest_artifacts
from orchestrator.config import parse_config
from orchestrator.console_logging import log_to_stderr
from orchestrator.contract import Result
from orchestrator.demo.app import release_command
from orchestrator.store_seed import seed_sqlagent_records, seed_verdicts

__all__ = ["Execute", "Outcome", "run_demo"]

MIGRATIONS = {
    "v2": [
        ("V1__create_greetings.sql", "CREATE TABLE greetings (id bigserial PRIMARY KEY, text text NOT NULL);\n"),
        ("U1__create_greetings.sql", "DROP TABLE greetings;\n"),
    ],
    "v3": [
        ("V2__add_greeting_language.sql", "ALTER TABLE greetings ADD COLUMN language text;\n"),
        ("U2__add_greeting_language.sql", "ALTER TABLE greetings DROP COLUMN language;\n"),
    ],
}


class Outcome(Protocol):
    """What one run of the orchestrator reports back to the walkthrough."""

    @property
    def exit_code(self) -> int: ...

    @property
    def result(self) -> Result | None: ...


class Execute(Protocol):
    """One orchestrator run from Action inputs and an environment (the CLI's `execute`)."""

    def __call__(self, raw: Mapping[str, str], env: Mapping[str, str], /) -> Outcome: ...


def run_demo(args: Sequence[str], execute: Execute) -> int:
    """Four deploys on the local platform; `execute` is passed in by the CLI, which owns running one."""
    parser = argparse.ArgumentParser(prog="deploy-orchestrator demo", description=__doc__)
    parser.add_argument("--workspace", default=".deploy-orchestrator/demo", help="where the demo writes its files")
    parsed = parser.parse_args(list(args))
    log_to_stderr()
    workspace = Path(parsed.workspace).resolve()
    shutil.rmtree(workspace, ignore_errors=True)
    (workspace / "db" / "migrations").mkdir(parents=True)
    (workspace / "summaries").mkdir()
    port = _free_port(8080)
    rows: list[list[str]] = []
    with _database() as dsn, _agentbench() as agentbench_url:
        env = {
            **os.environ,
            "GITHUB_WORKSPACE": str(workspace),
            "DATABASE_URL": dsn,
            "AGENTBENCH_TOKEN": "demo-" + uuid.uuid4().hex,
        }
        env.pop("GITHUB_ACTIONS", None)
        try:
            for step, (version, healthy, tamper) in enumerate(
                [("v1", True, False), ("v2", True, False), ("v3", False, False), ("v4", True, True)], start=1
            ):
                for name, sql in MIGRATIONS.get(version, []):
                    (workspace / "db" / "migrations" / name).write_text(sql)
                config = _config(port, agentbench_url, healthy=healthy)
                (workspace / "deploy.json").write_text(json.dumps(config, indent=2))
                run_id = f"demo-validation-{version}"
                digests = digest_artifacts(parse_config(config, workspace).artifacts, workspace)
                # What the upstream agents would write: the SQLAgent's migrations, then their validation and verdict.
                seed_sqlagent_records(dsn, digests, sqlagent_run_id=f"demo-sqlagent-{version}")
                seed_verdicts(dsn, run_id, digests)
                if tamper:
                    edited = workspace / "db" / "migrations" / "V2__add_greeting_language.sql"
                    edited.write_text(edited.read_text() + "UPDATE greetings SET text = 'edited after review';\n")
                print(
                    f"\n=== {step}. deploy {version}"
                    + (" (unhealthy build)" if not healthy else "")
                    + (" (a migration edited after validation)" if tamper else ""),
                    flush=True,
                )
                env["GITHUB_STEP_SUMMARY"] = str(workspace / "summaries" / f"{step}-{version}.md")
                raw = {"config": "deploy.json", "version": version, "validation-run-id": run_id}
                outcome = execute(raw, env)
                result = outcome.result
                status = result.status if result else "invalid"
                serving = _serving(port)
                tables = _schema(dsn)
                rows.append([version, status, str(outcome.exit_code), serving, tables])
                print(f"    status={status} exit={outcome.exit_code} now serving: {serving}; schema: {tables}")
                for migration in result.migrations_applied if result else ():
                    origin = migration.provenance
                    print(
                        f"    migration {migration.filename} {migration.direction}: "
                        + (f"produced by {origin.agent_id} in SQLAgent run {origin.sqlagent_run_id}" if origin else "")
                    )
                if result and result.rollback.triggered:
                    print(
                        f"    rollback: {result.rollback.reason} -> back on {result.rollback.previous_version} "
                        f"in {result.rollback.duration_seconds}s; pairs generated: "
                        f"{result.hardening.dpo_pairs_generated}"
                    )
        finally:
            _stop_local(workspace)
    print("\n| release | status | exit | serving after | public tables |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        f"\nStep summaries: {workspace / 'summaries'}/*.md; result JSON: "
        f"{workspace / '.deploy-orchestrator' / 'result.json'}"
    )
    expected = [("success", "0"), ("success", "0"), ("rolled_back", "1"), ("failed", "3")]
    ok = [(r[1], r[2]) for r in rows] == expected
    print("demo: " + ("every step behaved as expected" if ok else "UNEXPECTED OUTCOME (see above)"))
    return 0 if ok else 1


def _config(port: int, agentbench_url: str, *, healthy: bool) -> dict[str, Any]:
    command = release_command()
    # The app is the installed package; the release's own files are its migrations. The workspace
    # also holds the demo's PostgreSQL data directory, which is no part of any release.
    return {
        "deployment_config": {
            "strategy": "blue_green",
            "platform": "local",
            "local": {
                "command": command + ([] if healthy else ["--unhealthy"]),
                "listen": f"127.0.0.1:{port}",
                "source": "db",
                "drain_seconds": 2,
            },
        },
        "artifacts": {"odoo_modules": [], "migrations": ["db/migrations"]},
        "health_check": {
            "endpoint": "/health",
            "expected_status": 200,
            "timeout_seconds": 2,
            "retries": 3,
            "interval_seconds": 0.5,
        },
        "rollback_config": {
            "auto_rollback_on_failure": True,
            "keep_previous_versions": 2,
            "max_rollback_duration_seconds": 30,
        },
        "agentbench_config": {"url": agentbench_url, "token_env_var": "AGENTBENCH_TOKEN", "emit_dpo_on_failure": True},
        "credentials": {"do_api_token_env_var": "DIGITALOCEAN_TOKEN", "db_connection_env_var": "DATABASE_URL"},
        "verification": {"deadline_seconds": 10, "database": {"query": "SELECT true"}},
    }


@contextmanager
def _database() -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    try:
        import pgserver
    except ImportError:
        raise SystemExit(
            "the demo needs PostgreSQL: pip install 'deploy-orchestrator[demo]' or set DATABASE_URL"
        ) from None
    # As root, pgserver runs PostgreSQL as its own `pgserver` user and opens every parent of the data
    # directory to it (o+rx, up to /). So the data lives in a private directory of its own under the
    # system temp dir, never below the workspace: that would open the workspace's parents (a home
    # directory), and where one is 0700 by design (pytest's temp root, closed again by every pytest
    # session that starts meanwhile) initdb fails with "Permission denied".
    data = Path(tempfile.mkdtemp(prefix="deploy-orchestrator-demo-pg-"))
    try:
        # re-exported without __all__
        server = pgserver.get_server(str(data), cleanup_mode="delete")  # type: ignore[attr-defined]
        try:
            yield str(server.get_uri())
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(data, ignore_errors=True)


@contextmanager
def _agentbench() -> Iterator[str]:
    """A minimal agentbench receiver, so the demo shows a pair delivered end to end."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"submission_id": "demo-" + uuid.uuid4().hex[:8]}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _serving(port: int) -> str:
    try:
        return str(requests.get(f"http://127.0.0.1:{port}/version", timeout=2).json()["version"])
    except (requests.RequestException, ValueError, KeyError):
        return "nothing"


_RECORD_TABLES = (
    "validation_runs",
    "compliance_verdicts",
    "sqlagent_migrations",
    "deployment_log",
    "pipeline_lineage",
    "hardening_outbox",
)


def _schema(dsn: str) -> str:
    """The application's tables and columns, leaving out the orchestrator's own record tables."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_name, string_agg(column_name, ',' ORDER BY ordinal_position) "
                "FROM information_schema.columns WHERE table_schema = 'public' AND NOT table_name = ANY(%s) "
                "GROUP BY table_name ORDER BY table_name",
                (list(_RECORD_TABLES),),
            )
            found = [f"{name}({columns})" for name, columns in cur.fetchall()]
    finally:
        conn.close()
    return ", ".join(found) or "(none)"


def _stop_local(workspace: Path) -> None:
    from orchestrator.config import read_config_file
    from orchestrator.platforms.local import supervisor_stop

    with suppress(Exception):
        cfg = parse_config(read_config_file(workspace / "deploy.json"), workspace)
        if cfg.deployment.local is not None:
            supervisor_stop(cfg.deployment.local, workspace)


def _free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
