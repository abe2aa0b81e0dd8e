"""The whole Action, end to end, on the local platform: real processes, real proxy, real PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests

from orchestrator.artifacts import digest_artifacts
from orchestrator.cli import Execution, execute
from orchestrator.config import parse_config
from orchestrator.platforms.local import read_status, supervisor_stop
from tests.peers.github_api import GitHubApiPeer
from tests.peers.http import HttpPeer, Reply
from tests.peers.verdicts import seed_passed
from tests.workspace import base_config, write_config

TOKEN_CANARY = "agentbench-token-canary-8d1f0c"
ODOO_SCRIPT = str(Path(__file__).resolve().parent / "peers" / "odoo.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Workspace:
    def __init__(self, root: Path, dsn: str, agentbench: HttpPeer) -> None:
        self.root = root
        self.dsn = dsn
        self.port = free_port()
        self.config: dict[str, Any] = base_config(self.port)
        self.config["agentbench_config"]["url"] = agentbench.url
        self.github_token = ""
        self.env = {
            "GITHUB_WORKSPACE": str(root),
            "DATABASE_URL": dsn,
            "AGENTBENCH_TOKEN": TOKEN_CANARY,
            "GITHUB_OUTPUT": str(root / "github_output"),
            "GITHUB_STEP_SUMMARY": str(root / "summary.md"),
        }

    def migration(self, name: str, sql: str) -> None:
        folder = self.root / "db"
        folder.mkdir(exist_ok=True)
        (folder / name).write_text(sql)
        if "db" not in self.config["artifacts"]["migrations"]:
            self.config["artifacts"]["migrations"] = ["db"]

    def deploy(
        self,
        version: str,
        *,
        unhealthy: bool = False,
        seed: bool = True,
        mode: str = "deploy",
        pr_number: str = "",
        github_token: str = "",
    ) -> Execution:
        config = json.loads(json.dumps(self.config))
        if unhealthy:
            config["deployment_config"]["local"]["command"].append("--unhealthy")
        write_config(self.root, config)
        run_id = f"run-{version}"
        if seed:
            digests = digest_artifacts(parse_config(config, self.root).artifacts, self.root)
            seed_passed(self.dsn, run_id, digests)
        raw = {"config": "deploy.json", "version": version, "validation-run-id": run_id, "mode": mode}
        raw.update({k: v for k, v in (("pr-number", pr_number), ("github-token", github_token)) if v})
        return execute(raw, self.env)

    def serving(self) -> str:
        return str(requests.get(f"http://127.0.0.1:{self.port}/version", timeout=5).json()["version"])

    def outputs(self) -> dict[str, str]:
        text = (self.root / "github_output").read_text()
        values: dict[str, str] = {}
        lines = iter(text.splitlines())
        for line in lines:
            if "<<" in line:
                name, delimiter = line.split("<<", 1)
                body = []
                for inner in lines:
                    if inner == delimiter:
                        break
                    body.append(inner)
                values[name] = "\n".join(body)
            elif "=" in line:
                name, value = line.split("=", 1)
                values[name] = value
        return values


@pytest.fixture
def agentbench(http_peer: HttpPeer) -> HttpPeer:
    http_peer.route("POST", "/api/dpo-pairs", Reply(201, {"submission_id": "sub-1"}))
    return http_peer


@pytest.fixture
def ws(tmp_path: Path, pg_dsn: str, agentbench: HttpPeer) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path, pg_dsn, agentbench)
    yield workspace
    cfg = parse_config(workspace.config, tmp_path)
    assert cfg.deployment.local is not None
    supervisor_stop(cfg.deployment.local, tmp_path)


def public_tables(dsn: str) -> set[str]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        return {row[0] for row in cur.fetchall()}


def test_first_deploy_then_a_blue_green_switch(ws: Workspace) -> None:
    first = ws.deploy("v1")
    assert first.exit_code == 0, first.result and first.result.error
    assert ws.serving() == "v1"
    second = ws.deploy("v2")
    assert second.exit_code == 0
    assert second.result is not None
    assert second.result.status == "success"
    assert second.result.deployment_details.previous_version == "v1"
    assert second.result.deployment_details.new_version == "v2"
    assert ws.serving() == "v2"
    assert any(p.passed for p in second.result.health_checks)
    outputs = ws.outputs()
    assert outputs["status"] == "success"
    assert outputs["new-version"] == "v2"
    assert json.loads(outputs["result"])["deployment_id"] == second.result.deployment_id
    assert "v1` → `v2`" in (ws.root / "summary.md").read_text()


def test_an_unhealthy_release_is_rolled_back_and_the_old_one_serves_every_request(ws: Workspace) -> None:
    assert ws.deploy("v1").exit_code == 0
    failures: list[str] = []
    served: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                response = session.get(f"http://127.0.0.1:{ws.port}/version", timeout=5)
                if response.status_code != 200:
                    failures.append(str(response.status_code))
                else:
                    served.add(response.json()["version"])
            except requests.RequestException as exc:
                failures.append(type(exc).__name__)
            time.sleep(0.005)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        broken = ws.deploy("v2", unhealthy=True)
    finally:
        stop.set()
        thread.join()
    assert broken.exit_code == 1
    assert broken.result is not None
    assert broken.result.status == "rolled_back"
    assert broken.result.rollback.triggered
    assert broken.result.rollback.previous_version == "v1"
    assert any(not p.passed and p.status_code == 503 for p in broken.result.health_checks)
    assert failures == []
    assert served == {"v1"}
    assert ws.serving() == "v1"
    assert ws.outputs()["rolled-back"] == "true"


def test_a_failed_release_takes_its_migrations_with_it(ws: Workspace) -> None:
    assert ws.deploy("v1").exit_code == 0
    ws.migration("V1__create_greetings.sql", "CREATE TABLE greetings (id bigserial PRIMARY KEY, text text);\n")
    ws.migration("U1__create_greetings.sql", "DROP TABLE greetings;\n")
    broken = ws.deploy("v2", unhealthy=True)
    assert broken.exit_code == 1
    assert broken.result is not None
    directions = [(m.filename, m.direction, m.success) for m in broken.result.migrations_applied]
    assert directions == [
        ("V1__create_greetings.sql", "up", True),
        ("U1__create_greetings.sql", "down", True),
    ] or [d[1:] for d in directions] == [("up", True), ("down", True)]
    assert "greetings" not in public_tables(ws.dsn)
    healthy = ws.deploy("v3")
    assert healthy.exit_code == 0, healthy.result and healthy.result.error
    assert "greetings" in public_tables(ws.dsn)


def test_a_gate_refusal_touches_nothing(ws: Workspace) -> None:
    assert ws.deploy("v1").exit_code == 0
    ws.migration("V1__create_greetings.sql", "CREATE TABLE greetings (id bigserial PRIMARY KEY);\n")
    ws.migration("U1__create_greetings.sql", "DROP TABLE greetings;\n")
    refused = ws.deploy("v2", seed=False)
    assert refused.exit_code == 3
    assert refused.result is not None
    assert refused.result.status == "failed"
    assert refused.result.migrations_applied == ()
    assert "greetings" not in public_tables(ws.dsn)
    assert ws.serving() == "v1"


def test_plan_mode_prints_the_plan_and_touches_nothing(ws: Workspace) -> None:
    assert ws.deploy("v1").exit_code == 0
    ws.migration("V1__create_greetings.sql", "CREATE TABLE greetings (id bigserial PRIMARY KEY);\n")
    ws.migration("U1__create_greetings.sql", "DROP TABLE greetings;\n")
    planned = ws.deploy("v2", mode="plan")
    assert planned.exit_code == 0, planned.result and planned.result.error
    assert planned.result is not None
    plan = planned.result.to_dict()["plan"]
    assert any("route 100% to v2" in step for step in plan["rollout"])
    assert any("V1__create_greetings.sql" in line for line in plan["migrations"])
    assert "greetings" not in public_tables(ws.dsn)
    assert ws.serving() == "v1"


def test_secrets_never_reach_outputs_summaries_or_logs(ws: Workspace, capfd: pytest.CaptureFixture[str]) -> None:
    assert ws.deploy("v1").exit_code == 0
    assert ws.deploy("v2", unhealthy=True).exit_code == 1
    password = ws.dsn.split(":")[2].split("@")[0]
    captured = capfd.readouterr()
    texts = [
        (ws.root / "github_output").read_text(),
        (ws.root / "summary.md").read_text(),
        (ws.root / ".deploy-orchestrator" / "result.json").read_text(),
        captured.out,
        captured.err,
    ]
    for text in texts:
        assert TOKEN_CANARY not in text
        assert password not in text


def test_a_manual_rollback_returns_to_the_previous_release_and_its_schema(ws: Workspace) -> None:
    assert ws.deploy("v1").exit_code == 0
    ws.migration("V1__create_greetings.sql", "CREATE TABLE greetings (id bigserial PRIMARY KEY);\n")
    ws.migration("U1__create_greetings.sql", "DROP TABLE greetings;\n")
    assert ws.deploy("v2").exit_code == 0
    assert "greetings" in public_tables(ws.dsn)
    back = ws.deploy("v2", mode="rollback", seed=False)
    assert back.exit_code == 0, back.result and back.result.error
    assert back.result is not None
    assert back.result.status == "rolled_back"
    assert [(m.filename, m.direction) for m in back.result.migrations_applied] == [
        ("U1__create_greetings.sql", "down")
    ] or [m.direction for m in back.result.migrations_applied] == ["down"]
    assert ws.serving() == "v1"
    assert "greetings" not in public_tables(ws.dsn)


def test_a_manual_rollback_to_an_unknown_release_is_refused(ws: Workspace) -> None:
    assert ws.deploy("v1").exit_code == 0
    back = execute({"config": "deploy.json", "version": "v1", "mode": "rollback", "rollback-to": "v0"}, ws.env)
    assert back.exit_code == 2
    assert back.result is not None and back.result.error is not None
    assert "rollback-to: no kept release v0" in back.result.error
    assert ws.serving() == "v1"


@pytest.fixture
def github(ws: Workspace) -> Iterator[GitHubApiPeer]:
    token = "ghs_pipeline_canary_4c1d9e"
    peer = GitHubApiPeer(token=token, repository="acme/shop", commits={"a" * 40})
    ws.env.update({"GITHUB_API_URL": peer.url, "GITHUB_REPOSITORY": "acme/shop", "GITHUB_SHA": "a" * 40})
    ws.github_token = token
    yield peer
    threading.Thread(target=peer.close, daemon=True).start()
    assert peer.violations == [], "\n".join(peer.violations)


def test_a_deploy_is_tracked_as_a_github_deployment(ws: Workspace, github: GitHubApiPeer) -> None:
    done = ws.deploy("v1", github_token=ws.github_token)
    assert done.exit_code == 0
    (deployment,) = github.deployments.values()
    assert deployment["environment"] == "production"
    states = [s["state"] for s in next(iter(github.statuses.values()))]
    assert states == ["in_progress", "success"]


def test_a_refused_deploy_creates_no_github_deployment(ws: Workspace, github: GitHubApiPeer) -> None:
    assert ws.deploy("v1", seed=False, github_token=ws.github_token).exit_code == 3
    assert github.deployments == {}


def test_a_pull_request_preview_gets_its_own_address_and_goes_away(ws: Workspace, github: GitHubApiPeer) -> None:
    assert ws.deploy("v1").exit_code == 0
    preview = ws.deploy("pr7-1", mode="preview", pr_number="7", github_token=ws.github_token)
    assert preview.exit_code == 0, preview.result and preview.result.error
    assert preview.result is not None and preview.result.url is not None
    assert requests.get(preview.result.url + "/version", timeout=5).json()["version"] == "pr7-1"
    assert ws.serving() == "v1"
    (comment,) = github.comments[7]
    assert preview.result.url in comment["body"]
    update = ws.deploy("pr7-2", mode="preview", pr_number="7", github_token=ws.github_token)
    assert update.result is not None and update.result.url == preview.result.url
    assert requests.get(preview.result.url + "/version", timeout=5).json()["version"] == "pr7-2"
    assert len(github.comments[7]) == 1
    gone = ws.deploy("pr7-2", mode="preview-teardown", seed=False, pr_number="7", github_token=ws.github_token)
    assert gone.exit_code == 0, gone.result and gone.result.error
    with pytest.raises(requests.ConnectionError):
        requests.get(preview.result.url + "/version", timeout=2)
    assert ws.serving() == "v1"
    again = ws.deploy("pr7-2", mode="preview-teardown", seed=False, pr_number="7", github_token=ws.github_token)
    assert again.exit_code == 0


class _SwitchThenCrash:
    """A real local platform whose switch succeeds and then raises something we never translate:
    the shape of a bug after a side effect."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def route(self, weights: dict[str, int]) -> None:
        self._inner.route(weights)
        if weights.get("v2") == 100:
            raise KeyError("a bug after the switch")


def test_an_unexpected_error_after_the_switch_still_rolls_back(ws: Workspace) -> None:

    from orchestrator.cli import build_platform
    from orchestrator.composition import compose
    from orchestrator.config import load_request
    from orchestrator.pipeline import Pipeline
    from orchestrator.runlog import RunLog

    assert ws.deploy("v1").exit_code == 0
    write_config(ws.root, ws.config)
    digests = digest_artifacts(parse_config(ws.config, ws.root).artifacts, ws.root)
    seed_passed(ws.dsn, "run-v2", digests)
    request = load_request({"config": "deploy.json", "version": "v2", "validation-run-id": "run-v2"}, ws.env)
    platform = _SwitchThenCrash(build_platform(request, ws.env))
    log = RunLog()
    result = Pipeline(request, platform, compose(request, ws.env, log)).run()
    assert result.status == "rolled_back"
    assert result.error is not None and "unexpected KeyError" in result.error
    assert ws.serving() == "v1"


def test_a_first_release_failing_after_the_switch_pages_with_a_clear_reason(ws: Workspace, http_peer: HttpPeer) -> None:
    ws.config["verification"] = {"critical_endpoints": [{"path": "/version", "body_contains": "v0"}]}
    done = ws.deploy("v1")
    assert done.exit_code == 1
    assert done.result is not None
    assert done.result.status == "failed"
    assert done.result.rollback.triggered and done.result.rollback.succeeded is False
    assert done.result.error is not None and "no earlier release to return to" in done.result.error
    assert done.result.hardening.dpo_pairs_generated == 1


def ledger_rows(dsn: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(query)
        return list(cur.fetchall())


def test_odoo_modules_are_upgraded_only_when_they_change(ws: Workspace) -> None:
    module = ws.root / "addons" / "shop_sale"
    module.mkdir(parents=True)
    (module / "__manifest__.py").write_text("{'name': 'Shop Sale', 'version': '17.0.1.0', 'depends': ['sale']}\n")
    (module / "models.py").write_text("VALUE = 1\n")
    record = ws.root / "odoo-calls.jsonl"
    ws.env.update({"FAKE_ODOO_RECORD": str(record), "FAKE_ODOO_EXIT": "0"})
    ws.config["artifacts"]["odoo_modules"] = ["addons/shop_sale"]
    ws.config["odoo"] = {
        "upgrade_command": [
            sys.executable,
            "-P",
            ODOO_SCRIPT,
            "-d",
            "{database}",
            "-u",
            "{modules}",
            "--stop-after-init",
        ],
        "database": "prod",
    }
    assert ws.deploy("v1").exit_code == 0
    assert ws.deploy("v2").exit_code == 0
    (module / "models.py").write_text("VALUE = 2\n")
    third = ws.deploy("v3")
    assert third.exit_code == 0, third.result and third.result.error
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert [call["argv"] for call in calls] == [["-d", "prod", "-u", "shop_sale", "--stop-after-init"]] * 2
    assert third.result is not None
    assert third.result.to_dict()["odoo_modules"][0]["name"] == "shop_sale"


def test_every_run_leaves_a_ledger_entry_and_lineage(ws: Workspace) -> None:
    assert ws.deploy("v1").exit_code == 0
    assert ws.deploy("v2", seed=False).exit_code == 3
    rows = ledger_rows(
        ws.dsn, "SELECT new_version, status, refused_reason IS NOT NULL FROM deployment_log ORDER BY started_at"
    )
    assert rows == [("v1", "success", False), ("v2", "failed", True)]
    lineage = ledger_rows(ws.dsn, "SELECT validation_run_id, outcome FROM pipeline_lineage ORDER BY recorded_at")
    assert lineage[0] == ("run-v1", "success")


def test_a_result_counts_many_sqlagent_records_and_the_lineage_keeps_each(ws: Workspace) -> None:
    for n in range(1, 12):
        ws.migration(f"V{n}__t{n}.sql", f"CREATE TABLE t{n} (id bigint);\n")
        ws.migration(f"U{n}__t{n}.sql", f"DROP TABLE t{n};\n")
    done = ws.deploy("v1")
    assert done.exit_code == 0, done.result and done.result.error
    assert done.result is not None
    written = json.loads((ws.root / ".deploy-orchestrator" / "result.json").read_text())
    assert written["gates"]["sqlagent"] == {
        "sqlagent_run_ids": ["sqlagent-run-v1"],
        "files_count": 22,
        "files_listed_in": "pipeline_lineage.migration_provenance",
    }
    ((provenance,),) = ledger_rows(ws.dsn, "SELECT migration_provenance FROM pipeline_lineage")
    assert len(provenance) == 22
    assert {record["sqlagent_run_id"] for record in provenance.values()} == {"sqlagent-run-v1"}
    assert provenance["U11__t11.sql"]["sha256"] == written["artifacts"]["migrations"]["db/U11__t11.sql"]


def test_releases_never_see_the_orchestrators_own_secrets(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTBENCH_TOKEN", TOKEN_CANARY)
    monkeypatch.setenv("INPUT_GITHUB-TOKEN", "ghs_input_canary_77")
    monkeypatch.setenv("DATABASE_URL", ws.dsn)
    seen = ws.root / "release-env.json"
    dump = f"import json, os; json.dump(dict(os.environ), open({str(seen)!r}, 'w'))"
    local = ws.config["deployment_config"]["local"]
    local["command"] = ["sh", "-c", f'{sys.executable} -c "{dump}" && exec "$@"', "release", *local["command"]]
    assert ws.deploy("v1").exit_code == 0
    env = json.loads(seen.read_text())
    assert env["DATABASE_URL"] == ws.dsn
    assert "AGENTBENCH_TOKEN" not in env
    assert not any(name.startswith("INPUT_") for name in env)


def test_a_second_deploy_on_the_same_target_waits_then_fails_naming_the_holder(ws: Workspace) -> None:
    from orchestrator.deploy_lock import hold_deploy_lock
    from orchestrator.redaction import Secret

    assert ws.deploy("v1").exit_code == 0
    ws.config["deploy_lock"] = {"wait_seconds": 0.5}
    target = f"production/local/127.0.0.1:{ws.port}"
    with hold_deploy_lock(Secret(ws.dsn), target, wait_seconds=0, deployment_id="the-other-run"):
        blocked = ws.deploy("v2")
    assert blocked.exit_code == 1
    assert blocked.result is not None and blocked.result.error is not None
    assert "another run holds the deploy lock" in blocked.result.error
    assert "deploy-orchestrator the-other-run" in blocked.result.error
    assert blocked.result.failed_step == "lock"
    assert ws.serving() == "v1"
    assert ws.deploy("v2").exit_code == 0
    assert ws.serving() == "v2"


def test_a_manual_rollback_refuses_an_undo_script_edited_since_it_was_validated(ws: Workspace) -> None:
    assert ws.deploy("v1").exit_code == 0
    ws.migration("V1__create_greetings.sql", "CREATE TABLE greetings (id bigserial PRIMARY KEY);\n")
    ws.migration("U1__create_greetings.sql", "DROP TABLE greetings;\n")
    assert ws.deploy("v2").exit_code == 0
    ws.migration("U1__create_greetings.sql", "DROP TABLE greetings; DROP TABLE customers;\n")
    back = ws.deploy("v2", mode="rollback", seed=False)
    assert back.exit_code == 3
    assert back.result is not None and back.result.error is not None
    assert "undo script U1__create_greetings.sql is not the one validated" in back.result.error
    assert ws.serving() == "v2"
    assert "greetings" in public_tables(ws.dsn)


def test_earlier_pairs_are_delivered_after_the_runs_own_work_not_before_it(ws: Workspace, agentbench: HttpPeer) -> None:
    agentbench.route("POST", "/api/dpo-pairs", Reply(503, {"error": "down"}))
    assert ws.deploy("v1").exit_code == 0
    assert ws.deploy("v2", unhealthy=True).exit_code == 1  # its pair stays queued: agentbench is down
    done = ws.deploy("v3")
    assert done.exit_code == 0
    assert done.result is not None
    messages = [entry.message for entry in done.result.logs]
    backlog = next(i for i, m in enumerate(messages) if m.startswith("hardening:") and "still queued" in m)
    health = max(i for i, m in enumerate(messages) if m.startswith("health:"))
    assert health < backlog, messages
    assert ws.serving() == "v3"


APP_ANSWERING = """\
import http.server, json, sys
ANSWER = {answer!r}
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{"version": ANSWER}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def test_a_manual_rollback_runs_the_code_the_release_was_deployed_with(ws: Workspace) -> None:
    """The issue's attack: v1 answers A, v2 answers B, v1's process dies, `mode: rollback` -> A."""
    ws.config["deployment_config"]["local"]["command"] = [sys.executable, "app.py", "{port}"]
    (ws.root / "app.py").write_text(APP_ANSWERING.format(answer="A"))
    assert ws.deploy("v1").exit_code == 0
    assert ws.serving() == "A"
    (ws.root / "app.py").write_text(APP_ANSWERING.format(answer="B"))
    assert ws.deploy("v2").exit_code == 0
    assert ws.serving() == "B"
    state_dir = ws.root / ".deploy-orchestrator" / "local"
    status = read_status(state_dir)
    assert status is not None
    os.killpg(next(r.pid for r in status.releases if r.version == "v1"), signal.SIGKILL)

    back = ws.deploy("v2", mode="rollback", seed=False)

    assert back.exit_code == 0, back.result and back.result.error
    assert ws.serving() == "A"


def _local_cli(ws: Workspace, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    entry = Path(__file__).resolve().parent.parent / "entrypoint.py"
    env = {**os.environ, "GITHUB_WORKSPACE": str(ws.root)}
    return subprocess.run(
        [sys.executable, str(entry), "local", *args],
        env=env,
        cwd=cwd or ws.root,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_local_status_and_stop_work_when_the_rest_of_the_config_is_broken(ws: Workspace, tmp_path: Path) -> None:
    ws.migration("V1__t.sql", "CREATE TABLE t (id bigint);")
    ws.migration("U1__t.sql", "DROP TABLE t;")
    assert ws.deploy("v1").exit_code == 0
    (ws.root / "db").rename(ws.root / "db-moved")  # the config now names a migrations folder that is gone
    try:
        status = _local_cli(ws, "status", "--config", "deploy.json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["running"] is True
        stopped = _local_cli(ws, "stop", "--config", "deploy.json")
        assert stopped.returncode == 0, stopped.stderr
    finally:
        (ws.root / "db-moved").rename(ws.root / "db")
    with pytest.raises(requests.RequestException):
        requests.get(f"http://127.0.0.1:{ws.port}/version", timeout=2)


def test_local_stop_by_state_dir_works_from_anywhere(ws: Workspace, tmp_path: Path) -> None:
    assert ws.deploy("v1").exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    state_dir = ws.root / ".deploy-orchestrator" / "local"
    stopped = _local_cli(ws, "stop", "--state-dir", str(state_dir), cwd=elsewhere)
    assert stopped.returncode == 0, stopped.stderr
    with pytest.raises(requests.RequestException):
        requests.get(f"http://127.0.0.1:{ws.port}/version", timeout=2)


def test_the_summary_says_which_release_and_phase_each_check_belongs_to(ws: Workspace) -> None:
    assert ws.deploy("v1").exit_code == 0
    ws.config["verification"] = {"critical_endpoints": [{"path": "/version", "body_contains": "v1"}]}
    done = ws.deploy("v2")
    assert done.result is not None and done.result.status == "rolled_back", done.result and done.result.error
    phases = {(p.release, p.phase, p.passed) for p in done.result.health_checks}
    assert ("v2", "pre-switch", True) in phases
    assert ("v2", "verification", False) in phases
    assert ("v1", "rollback re-check", True) in phases
    assert done.result.failed_step == "verification", "the critical endpoint failed, not the health endpoint"
    assert any(e.message.startswith("gate validation: passed") for e in done.result.logs)
    assert not any(e.message.startswith("gate: gate") for e in done.result.logs), "no doubled prefix"
    summary = (ws.root / "summary.md").read_text()
    assert "| release | phase | check |" in summary
    assert "| `v2` | verification |" in summary
    assert "| `v1` | rollback re-check |" in summary


def test_a_refused_deploy_still_reports_the_release_that_serves(ws: Workspace) -> None:
    assert ws.deploy("v1").exit_code == 0
    refused = ws.deploy("v2", seed=False)
    assert refused.exit_code == 3
    assert refused.result is not None
    assert refused.result.deployment_details.previous_version == "v1"
    assert ws.outputs()["previous-version"] == "v1"
    assert ws.serving() == "v1"
