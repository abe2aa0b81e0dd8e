"""Verdict sources against real peers: PostgreSQL for DatabaseVerdicts, loopback HTTP for HttpVerdicts."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest

from orchestrator.artifacts import ArtifactDigests, digest_artifacts
from orchestrator.contract import Artifacts, GatesConfig
from orchestrator.errors import ConfigError, GateError
from orchestrator.redaction import Secret
from orchestrator.store import STORE_DDL, DatabaseVerdicts, HttpVerdicts, open_verdict_source
from orchestrator.store_seed import create_store_tables, seed_verdicts
from tests.peers.http import HttpPeer, Reply
from tests.peers.verdicts import VerdictService, seed_passed, silent_server

EVIL = "x'; DROP TABLE validation_runs; --"


@pytest.fixture
def digests(workspace: Path, artifacts: Artifacts) -> ArtifactDigests:
    return digest_artifacts(artifacts, workspace)


def test_ddl_is_idempotent(pg_dsn: str) -> None:
    create_store_tables(pg_dsn)
    create_store_tables(Secret(pg_dsn))
    assert "CREATE TABLE IF NOT EXISTS validation_runs" in STORE_DDL.read_text()


def test_database_source_reads_the_run_and_the_newest_verdict(store_dsn: str, digests: ArtifactDigests) -> None:
    decided = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    seed_passed(store_dsn, "run-1", digests, verdict_id="v-old", decided_at=decided, verdict="non_compliant")
    seed_verdicts(store_dsn, "run-1", digests, verdict_id="v-new", decided_at=decided + timedelta(minutes=5))
    source = DatabaseVerdicts(Secret(store_dsn), timeout=5)
    run = source.validation_run("run-1")
    assert run is not None
    assert (run.id, run.status, run.agent_id, run.digests) == ("run-1", "passed", "agent_005", digests)
    assert run.finished_at is not None and run.finished_at.tzinfo is not None
    verdict = source.compliance_verdict("run-1")
    assert verdict is not None
    assert (verdict.id, verdict.verdict, verdict.validator_id) == ("v-new", "compliant", "agent_002")
    assert source.validation_run("run-2") is None
    assert source.compliance_verdict("run-2") is None
    assert "orchestrator" not in source.describe() and "pw-" not in source.describe()


def test_sql_in_a_run_id_finds_nothing_and_drops_nothing(store_dsn: str, digests: ArtifactDigests) -> None:
    seed_passed(store_dsn, "run-1", digests)
    source = DatabaseVerdicts(Secret(store_dsn), timeout=5)
    assert source.validation_run(EVIL) is None
    assert source.compliance_verdict(EVIL) is None
    assert source.validation_run("run-1' OR '1'='1") is None
    conn = psycopg2.connect(store_dsn)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM validation_runs")
        assert cur.fetchone() == (1,)
    conn.close()


def test_a_locked_table_times_out_as_a_store_refusal(store_dsn: str, digests: ArtifactDigests) -> None:
    """A migration holding an exclusive lock on the table: statement_timeout must stop the wait."""
    seed_passed(store_dsn, "run-1", digests)
    holder = psycopg2.connect(store_dsn)
    cur = holder.cursor()
    cur.execute("LOCK TABLE validation_runs IN ACCESS EXCLUSIVE MODE")
    try:
        source = DatabaseVerdicts(Secret(store_dsn), timeout=0.5)
        # The lock is held until `finally`: only statement_timeout can end the wait.
        with pytest.raises(GateError) as caught:
            source.validation_run("run-1")
    finally:
        holder.rollback()
        holder.close()
    assert caught.value.gate == "store"
    assert "no answer within 0.5 s (statement_timeout)" in str(caught.value)
    assert caught.value.facts["run_id"] == "run-1"


def test_a_server_that_accepts_and_never_speaks_hits_connect_timeout() -> None:
    with silent_server() as silent:
        dsn = f"postgresql://u:hunter2-secret@127.0.0.1:{silent.port}/db"
        source = DatabaseVerdicts(Secret(dsn), timeout=1)
        started = time.monotonic()
        with pytest.raises(GateError) as caught:
            source.validation_run("run-1")
        elapsed = time.monotonic() - started
    assert caught.value.gate == "store"
    assert elapsed > 1.5, "the server never speaks: only connect_timeout ends the wait"
    assert "hunter2-secret" not in str(caught.value)
    assert "could not connect within 2 s (connect_timeout); the gates fail closed" in str(caught.value)


def test_missing_tables_say_to_load_the_ddl(pg_dsn: str) -> None:
    with pytest.raises(GateError, match=r"load pipeline-store.sql \(schema/\) into the store") as caught:
        DatabaseVerdicts(Secret(pg_dsn), timeout=5).validation_run("run-1")
    assert caught.value.gate == "store"


def test_the_database_source_reads_in_a_read_only_transaction(store_dsn: str, digests: ArtifactDigests) -> None:
    """A store whose `validation_runs` is a view that tries to write: the gate's transaction must refuse it."""
    seed_passed(store_dsn, "run-1", digests)
    conn = psycopg2.connect(store_dsn)
    with conn, conn.cursor() as cur:
        cur.execute(
            """
            ALTER TABLE validation_runs RENAME TO validation_runs_data;
            CREATE TABLE side_effects (at timestamptz DEFAULT now());
            CREATE FUNCTION writing_runs() RETURNS SETOF validation_runs_data LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO side_effects DEFAULT VALUES;
                RETURN QUERY SELECT * FROM validation_runs_data;
            END $$;
            CREATE VIEW validation_runs AS SELECT * FROM writing_runs();
            """
        )
    source = DatabaseVerdicts(Secret(store_dsn), timeout=5)
    with pytest.raises(GateError, match="read-only transaction") as caught:
        source.validation_run("run-1")
    assert caught.value.gate == "store"
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM side_effects")
        assert cur.fetchone() == (0,)
    conn.close()


def test_http_source_reads_rows_with_the_token_and_encodes_the_id(
    http_peer: HttpPeer, digests: ArtifactDigests
) -> None:
    service = VerdictService(http_peer, token="tok-verdicts-123")
    service.add_passed("run/1", digests)
    source = HttpVerdicts(http_peer.url + "/", Secret("tok-verdicts-123"), timeout=5)
    run = source.validation_run("run/1")
    verdict = source.compliance_verdict("run/1")
    assert run is not None and run.digests == digests
    assert verdict is not None and verdict.verdict == "compliant"
    assert [s.path for s in http_peer.seen] == ["/validation-runs/run%2F1", "/compliance-verdicts/run%2F1"]
    assert http_peer.seen[0].headers["authorization"] == "Bearer tok-verdicts-123"
    assert source.validation_run("../admin") is None
    assert http_peer.seen[-1].path == "/validation-runs/..%2Fadmin"


def test_http_source_picks_the_newest_verdict(http_peer: HttpPeer, digests: ArtifactDigests) -> None:
    from orchestrator.store import ComplianceVerdict

    t = datetime(2026, 3, 1, tzinfo=UTC)
    service = VerdictService(http_peer)
    service.set_verdicts(
        "run-1",
        [
            ComplianceVerdict("v2", "run-1", "agent_002", "non_compliant", digests, t + timedelta(hours=1), "PII"),
            ComplianceVerdict("v1", "run-1", "agent_002", "compliant", digests, t),
        ],
    )
    verdict = HttpVerdicts(http_peer.url, None, timeout=5).compliance_verdict("run-1")
    assert verdict is not None and (verdict.id, verdict.reason) == ("v2", "PII")


def test_http_errors_fail_closed_with_the_status(http_peer: HttpPeer) -> None:
    http_peer.route("GET", "/validation-runs/run-1", Reply(503, "maintenance"))
    http_peer.route("GET", "/compliance-verdicts/run-1", Reply(302, "", headers={"Location": "http://127.0.0.1:1/"}))
    source = HttpVerdicts(http_peer.url, None, timeout=5)
    with pytest.raises(GateError, match=r"HTTP 503 \(maintenance\)") as caught:
        source.validation_run("run-1")
    assert caught.value.gate == "store"
    with pytest.raises(GateError, match="HTTP 302"):
        source.compliance_verdict("run-1")


def test_http_malformed_rows_fail_closed(http_peer: HttpPeer) -> None:
    http_peer.route("GET", "/validation-runs/run-1", Reply(200, {"id": "run-1", "status": "passed"}))
    http_peer.route("GET", "/validation-runs/run-2", Reply(200, "not json"))
    http_peer.route("GET", "/compliance-verdicts/run-1", Reply(200, ["x"]))
    source = HttpVerdicts(http_peer.url, None, timeout=5)
    with pytest.raises(GateError, match="malformed validation run row: `agent_id` must be a non-empty string"):
        source.validation_run("run-1")
    with pytest.raises(GateError, match="the body is not JSON"):
        source.validation_run("run-2")
    with pytest.raises(GateError, match="expected a JSON array of objects"):
        source.compliance_verdict("run-1")


def test_timestamps_without_offset_are_refused(http_peer: HttpPeer, digests: ArtifactDigests) -> None:
    row = {
        "id": "run-1",
        "status": "passed",
        "agent_id": "agent_005",
        "created_at": "2026-03-01T10:00:00",
        "finished_at": None,
        "artifact_digests": digests.to_dict(),
    }
    http_peer.route("GET", "/validation-runs/run-1", Reply(200, row))
    with pytest.raises(GateError, match="`created_at` has no UTC offset") as caught:
        HttpVerdicts(http_peer.url, None, timeout=5).validation_run("run-1")
    assert caught.value.gate == "store"


def test_http_source_that_accepts_and_never_answers_times_out() -> None:
    with silent_server() as silent:
        source = HttpVerdicts(f"http://127.0.0.1:{silent.port}", Secret("tok-never-shown"), timeout=0.5)
        # The server never answers: only the timeout can end the call.
        with pytest.raises(GateError) as caught:
            source.validation_run("run-1")
    assert caught.value.gate == "store"
    assert "no answer within 0.5 s" in str(caught.value)
    assert "tok-never-shown" not in str(caught.value)


def test_http_source_that_is_down_is_unreachable() -> None:
    with silent_server() as silent:
        port = silent.port
    with pytest.raises(GateError, match="unreachable") as caught:
        HttpVerdicts(f"http://127.0.0.1:{port}", None, timeout=2).validation_run("run-1")
    assert caught.value.gate == "store"


def test_open_verdict_source_picks_by_config_and_names_what_is_missing(store_dsn: str) -> None:
    source = open_verdict_source(GatesConfig(), {"DB_URL": store_dsn}, default_dsn_env_var="DB_URL")
    assert isinstance(source, DatabaseVerdicts)
    expected = "credentials.db_connection_env_var: the environment variable DB_URL"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        open_verdict_source(GatesConfig(), {}, default_dsn_env_var="DB_URL")
    with pytest.raises(ConfigError, match=re.escape("gates.dsn_env_var: the environment variable STORE_DSN")):
        open_verdict_source(GatesConfig(dsn_env_var="STORE_DSN"), {}, default_dsn_env_var="DB_URL")
    http = open_verdict_source(
        GatesConfig(source="http", url="http://127.0.0.1:9", token_env_var="T"),
        {"T": "tok-1234"},
        default_dsn_env_var="X",
    )
    assert isinstance(http, HttpVerdicts)
    with pytest.raises(ConfigError, match=re.escape("gates.token_env_var: the environment variable T is not set")):
        open_verdict_source(
            GatesConfig(source="http", url="http://127.0.0.1:9", token_env_var="T"), {}, default_dsn_env_var="X"
        )
    with pytest.raises(ConfigError, match=re.escape("gates.url: required")):
        open_verdict_source(GatesConfig(source="http"), {}, default_dsn_env_var="X")
    with pytest.raises(ConfigError, match="not a valid PostgreSQL connection string"):
        DatabaseVerdicts(Secret("not a dsn"), timeout=1)


def test_concurrent_gate_reads_do_not_interfere(store_dsn: str, digests: ArtifactDigests) -> None:
    seed_passed(store_dsn, "run-1", digests)
    source = DatabaseVerdicts(Secret(store_dsn), timeout=5)
    results: list[object] = []

    def read() -> None:
        results.append(source.validation_run("run-1"))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r is not None for r in results)
