"""Migrations only from the SQLAgent, end to end: real PostgreSQL, the App Platform simulator driven by
pydo, the HTTP verdict service, the local platform for a manual rollback.

Each refusal must exit 3 and touch nothing: no migration (no table, no history row), no platform
call that changes anything (reading what is live is allowed), no traffic change, and the refusal
is recorded in `deployment_log`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests

from orchestrator.artifacts import ArtifactDigests, digest_artifacts
from orchestrator.cli import Execution, execute
from orchestrator.config import parse_config
from orchestrator.store import ComplianceVerdict, ValidationRun
from orchestrator.store_seed import seed_sqlagent_records, seed_verdicts
from tests.peers.do_simulator import DoSimulator
from tests.peers.http import HttpPeer
from tests.peers.verdicts import VerdictService, seed_passed, sqlagent_records_for
from tests.workspace import base_config, write_config

IMAGE = "registry.digitalocean.com/acme/shop@sha256:" + "cd" * 32
V1 = "CREATE TABLE orders (id bigserial PRIMARY KEY);\n"
U1 = "DROP TABLE orders;\n"


@pytest.fixture
def sim() -> Iterator[DoSimulator]:
    simulator = DoSimulator(phases={"PENDING_BUILD": 0.05, "BUILDING": 0.1, "PENDING_DEPLOY": 0.05, "DEPLOYING": 0.1})
    yield simulator
    simulator.close()
    assert simulator.violations == [], "\n".join(simulator.violations)


class Shop:
    """A repository with one migration and its undo, deployed to App Platform."""

    def __init__(self, root: Path, sim: DoSimulator, dsn: str) -> None:
        self.root, self.sim, self.dsn = root, sim, dsn
        self.service: VerdictService | None = None
        self.app_id = sim.seed_app("shop", version="v1")
        (root / "db").mkdir()
        self.write("V1__orders.sql", V1)
        self.write("U1__orders.sql", U1)
        self.config = base_config()
        self.config["deployment_config"] = {
            "strategy": "blue_green",
            "platform": "digitalocean",
            "do_app_id": self.app_id,
        }
        self.config["artifacts"].update(docker_image=IMAGE, migrations=["db"])
        self.config["health_check"].update(retries=2, interval_seconds=0.1)
        write_config(root, self.config)

    def use_http(self, service: VerdictService) -> None:
        """Read the gates' rows from the HTTP verdict service instead of the database."""
        self.service = service
        self.config["gates"] = {"source": "http", "url": service.url}
        write_config(self.root, self.config)

    def record(self, sqlagent_run_id: str, *, agent_id: str = "agent_004") -> None:
        """The SQLAgent (or `agent_id`) records the migrations as they are on disk now."""
        if self.service is None:
            seed_sqlagent_records(self.dsn, self.digests(), sqlagent_run_id=sqlagent_run_id, agent_id=agent_id)
        else:
            self.service.add_sqlagent_records(sqlagent_records_for(self.digests(), sqlagent_run_id, agent_id=agent_id))

    def approve(self, run_id: str = "run-v2") -> None:
        """A passed validation run and a compliant verdict for the files as they are on disk now."""
        digests = self.digests()
        if self.service is None:
            seed_verdicts(self.dsn, run_id, digests)
            return
        now = datetime.now(UTC)
        self.service.add_run(ValidationRun(run_id, "passed", "agent_005", now, now, digests))
        self.service.set_verdicts(
            run_id, [ComplianceVerdict(f"v-{run_id}", run_id, "agent_002", "compliant", digests, now)]
        )

    def write(self, name: str, sql: str) -> None:
        (self.root / "db" / name).write_text(sql)

    def digests(self) -> ArtifactDigests:
        return digest_artifacts(parse_config(self.config, self.root).artifacts, self.root)

    def deploy(self, version: str = "v2", **env: str) -> Execution:
        environment = {
            "GITHUB_WORKSPACE": str(self.root),
            "DATABASE_URL": self.dsn,
            "DIGITALOCEAN_TOKEN": self.sim.token,
            "DIGITALOCEAN_API_URL": self.sim.url,
            "DIGITALOCEAN_CA_BUNDLE": self.sim.ca_bundle,
            "AGENTBENCH_TOKEN": "t0ken-provenance",
            **env,
        }
        raw = {"config": "deploy.json", "version": version, "validation-run-id": f"run-{version}"}
        return execute(raw, environment)

    def live_version(self) -> str:
        return requests.get(self.sim.app_json(self.app_id)["live_url"] + "/version", timeout=5).text


@pytest.fixture
def shop(tmp_path: Path, sim: DoSimulator, pg_dsn: str) -> Shop:
    return Shop(tmp_path, sim, pg_dsn)


def _no_record(shop: Shop) -> None:
    shop.approve()


def _another_agent(shop: Shop) -> None:
    shop.record("impostor-1", agent_id="agent_009")
    shop.approve()


def _changed_after_recording(shop: Shop) -> None:
    shop.record("sqlagent-1")
    shop.write("V1__orders.sql", V1 + "INSERT INTO orders DEFAULT VALUES;\n")
    shop.approve()


def _undo_differs(shop: Shop) -> None:
    shop.record("sqlagent-1")
    shop.write("U1__orders.sql", "DROP TABLE orders CASCADE;\n")
    shop.approve()


def _verdict_and_record_disagree(shop: Shop) -> None:
    shop.write("V1__orders.sql", "CREATE TABLE orders (id bigint PRIMARY KEY);\n")
    shop.record("sqlagent-1")
    shop.write("V1__orders.sql", V1)
    shop.approve()


CASES: dict[str, tuple[Callable[[Shop], None], tuple[str, ...], str]] = {
    "no record": (_no_record, ("V1__orders.sql", "U1__orders.sql"), "the SQLAgent has no record"),
    "another agent": (_another_agent, ("V1__orders.sql", "U1__orders.sql"), "by 'agent_009'"),
    "changed after recording": (_changed_after_recording, ("V1__orders.sql",), "changed after the SQLAgent produced"),
    "undo differs": (_undo_differs, ("U1__orders.sql",), "the undo script changed after the SQLAgent produced it"),
    "verdict and record disagree": (_verdict_and_record_disagree, ("V1__orders.sql",), "the SQLAgent recorded"),
}


@pytest.mark.parametrize("source", ["database", "http"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_migration_not_exactly_from_the_sqlagent_is_refused_with_nothing_touched(
    shop: Shop, case: str, source: str, http_peer: HttpPeer
) -> None:
    if source == "http":
        shop.use_http(VerdictService(http_peer))
    prepare, files, reason = CASES[case]
    prepare(shop)
    digests = dict(shop.digests().migrations)
    calls = _changes(shop.sim)
    refused = shop.deploy()
    assert refused.exit_code == 3, refused.result and refused.result.error
    assert refused.result is not None
    data = refused.result.to_dict()
    assert data["refused"]["gate"] == "provenance"
    error = refused.result.error or ""
    assert reason in error
    assert f"{len(files)} migration file(s)" in error
    for name in files:
        assert f"{name}: sha256 {digests[f'db/{name}']} in the deploy" in error
    assert refused.result.migrations_applied == ()
    assert _changes(shop.sim) == calls, "a refused deploy changed something on the platform"
    assert len(shop.sim.deployments(shop.app_id)) == 1
    assert shop.live_version() == "v1"
    assert _tables(shop.dsn) & {"orders"} == set()
    assert _history_rows(shop.dsn) == 0
    status, refused_reason = _logged(shop.dsn, refused.result.deployment_id)
    assert status == "failed" and refused_reason is not None and "gate provenance" in refused_reason


def test_a_deploy_names_the_sqlagent_run_in_the_result_the_summary_and_the_lineage(shop: Shop) -> None:
    digests = shop.digests()
    seed_sqlagent_records(shop.dsn, digests, sqlagent_run_id="sqlagent-42")
    seed_verdicts(shop.dsn, "run-v2", digests)
    done = shop.deploy()
    assert done.exit_code == 0, done.result and done.result.error
    assert done.result is not None
    (applied,) = done.result.migrations_applied
    assert applied.provenance is not None
    assert (applied.provenance.sqlagent_run_id, applied.provenance.agent_id) == ("sqlagent-42", "agent_004")
    assert applied.provenance.sha256 == dict(digests.migrations)["db/V1__orders.sql"]
    result = json.loads((shop.root / ".deploy-orchestrator" / "result.json").read_text())
    assert result["migrations_applied"][0]["provenance"]["sqlagent_run_id"] == "sqlagent-42"
    summary = (shop.root / ".deploy-orchestrator" / "summary.md").read_text()
    assert "| produced by |" in summary and "agent_004, SQLAgent run `sqlagent-42`" in summary
    with psycopg2.connect(shop.dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT validation_run_id, compliance_verdict_id, sqlagent_run_ids, migration_provenance"
            " FROM pipeline_lineage WHERE deployment_id = %s",
            (done.result.deployment_id,),
        )
        run_id, verdict_id, runs, provenance = cur.fetchone()
    conn.close()
    assert run_id == "run-v2" and verdict_id is not None
    assert runs == ["sqlagent-42"]
    assert set(provenance) == {"V1__orders.sql", "U1__orders.sql"}
    assert provenance["U1__orders.sql"]["sqlagent_run_id"] == "sqlagent-42"


def test_plan_mode_shows_what_the_sqlagent_must_have_recorded(shop: Shop) -> None:
    digests = shop.digests()
    seed_passed(shop.dsn, "run-v2", digests)
    calls_before = shop.sim.count("POST")
    planned = execute(
        {"config": "deploy.json", "version": "v2", "validation-run-id": "run-v2", "mode": "plan"},
        {
            "GITHUB_WORKSPACE": str(shop.root),
            "DATABASE_URL": shop.dsn,
            "DIGITALOCEAN_TOKEN": shop.sim.token,
            "DIGITALOCEAN_API_URL": shop.sim.url,
            "DIGITALOCEAN_CA_BUNDLE": shop.sim.ca_bundle,
        },
    )
    assert planned.exit_code == 0, planned.result and planned.result.error
    assert planned.result is not None
    sha = dict(digests.migrations)
    assert planned.result.to_dict()["plan"]["sqlagent"] == [
        f"SQLAgent (agent_004) must have recorded V1__orders.sql (version 1) sha256 {sha['db/V1__orders.sql']}; "
        f"undo U1__orders.sql sha256 {sha['db/U1__orders.sql']}"
    ]
    assert shop.sim.count("POST") == calls_before


def test_the_http_verdict_service_refuses_a_migration_without_a_record(shop: Shop, http_peer: HttpPeer) -> None:
    service = VerdictService(http_peer, token="verdict-token-canary")
    now = datetime.now(UTC)
    digests = shop.digests()
    service.add_run(ValidationRun("run-v2", "passed", "agent_005", now, now, digests))
    service.set_verdicts("run-v2", [ComplianceVerdict("v-1", "run-v2", "agent_002", "compliant", digests, now)])
    shop.config["gates"] = {"source": "http", "url": service.url, "token_env_var": "VERDICT_TOKEN"}
    write_config(shop.root, shop.config)
    calls = _changes(shop.sim)
    refused = shop.deploy(VERDICT_TOKEN="verdict-token-canary")
    assert refused.exit_code == 3, refused.result and refused.result.error
    assert refused.result is not None and "the SQLAgent has no record" in (refused.result.error or "")
    assert _changes(shop.sim) == calls
    assert _history_rows(shop.dsn) == 0
    assert any(seen.path == "/sqlagent-migrations/V1__orders.sql" for seen in http_peer.seen)


def test_the_http_verdict_service_with_records_lets_the_deploy_through(shop: Shop, http_peer: HttpPeer) -> None:
    service = VerdictService(http_peer)
    service.add_passed("run-v2", shop.digests())
    shop.config["gates"] = {"source": "http", "url": service.url}
    write_config(shop.root, shop.config)
    done = shop.deploy()
    assert done.exit_code == 0, done.result and done.result.error
    assert done.result is not None
    assert [m.provenance.sqlagent_run_id if m.provenance else None for m in done.result.migrations_applied] == [
        "sqlagent-run-v2"
    ]


def _changes(sim: DoSimulator) -> int:
    """Platform calls other than reads."""
    return sim.count() - sim.count("GET")


def _tables(dsn: str) -> set[str]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        names = {str(row[0]) for row in cur.fetchall()}
    conn.close()
    return names


def _history_rows(dsn: str) -> int:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('deploy_orchestrator.schema_history') IS NOT NULL")
        row = cur.fetchone()
        if not row or not row[0]:
            return 0
        cur.execute("SELECT count(*) FROM deploy_orchestrator.schema_history")
        count = cur.fetchone()
    conn.close()
    return int(count[0]) if count else 0


def _logged(dsn: str, deployment_id: str) -> tuple[Any, Any]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT status, refused_reason FROM deployment_log WHERE deployment_id = %s", (deployment_id,))
        row = cur.fetchone()
    conn.close()
    assert row is not None
    return row[0], row[1]


def _rollback(shop: Shop) -> Execution:
    raw = {"config": "deploy.json", "version": "v1", "mode": "rollback", "rollback-to": "v1"}
    return execute(
        raw,
        {
            "GITHUB_WORKSPACE": str(shop.root),
            "DATABASE_URL": shop.dsn,
            "DIGITALOCEAN_TOKEN": shop.sim.token,
            "DIGITALOCEAN_API_URL": shop.sim.url,
            "DIGITALOCEAN_CA_BUNDLE": shop.sim.ca_bundle,
            "AGENTBENCH_TOKEN": "t0ken-provenance",
        },
    )


def _first_deploy_then_v2(shop: Shop) -> None:
    (shop.root / "db" / "V1__orders.sql").unlink()
    (shop.root / "db" / "U1__orders.sql").unlink()
    seed_passed(shop.dsn, "run-v1", shop.digests())
    assert shop.deploy("v1").exit_code == 0  # the ledger must have seen v1 go live
    shop.write("V1__orders.sql", V1)
    shop.write("U1__orders.sql", U1)
    seed_passed(shop.dsn, "run-v2", shop.digests())
    done = shop.deploy("v2")
    assert done.exit_code == 0, done.result and done.result.error
    assert "orders" in _tables(shop.dsn)


def test_a_manual_rollback_runs_the_undo_the_sqlagent_recorded(shop: Shop) -> None:
    _first_deploy_then_v2(shop)
    back = _rollback(shop)
    assert back.exit_code == 0, back.result and back.result.error
    assert back.result is not None
    (undone,) = back.result.migrations_applied
    assert (undone.filename, undone.direction) == ("U1__orders.sql", "down")
    assert undone.provenance is not None and undone.provenance.sqlagent_run_id == "sqlagent-run-v2"
    assert "orders" not in _tables(shop.dsn)


def test_a_manual_rollback_refuses_an_undo_the_sqlagent_did_not_record(shop: Shop) -> None:
    _first_deploy_then_v2(shop)
    with psycopg2.connect(shop.dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE sqlagent_migrations SET agent_id = 'agent_009' WHERE filename = 'V1__orders.sql'")
    conn.close()
    calls, rows = _changes(shop.sim), _history_rows(shop.dsn)
    back = _rollback(shop)
    assert back.exit_code == 3, back.result and back.result.error
    assert back.result is not None
    error = back.result.error or ""
    assert "gate provenance: 1 migration file(s)" in error
    assert "U1__orders.sql: sha256" in error and "by 'agent_009'" in error
    assert _changes(shop.sim) == calls
    assert shop.live_version() == "v2"
    assert "orders" in _tables(shop.dsn) and _history_rows(shop.dsn) == rows
    status, refused_reason = _logged(shop.dsn, back.result.deployment_id)
    assert status == "failed" and "gate provenance" in (refused_reason or "")
