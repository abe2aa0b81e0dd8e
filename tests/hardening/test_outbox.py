"""The durable outbox against a real PostgreSQL and a real agentbench server, with faults injected."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psycopg2
import pytest

from orchestrator.hardening import AgentbenchClient, Outbox, build_pair, emit, flush
from orchestrator.hardening.outbox import FALLBACK_FILE
from orchestrator.redaction import Secret
from tests.hardening.samples import failure
from tests.peers.agentbench import AgentbenchPeer, Fault
from tests.peers.postgres import free_port


def _client(peer: AgentbenchPeer, token: Secret, timeout: float = 2.0) -> AgentbenchClient:
    # Short backoff keeps fault tests fast; the retry logic is the same as in production.
    return AgentbenchClient(peer.url, token, timeout=timeout, backoff_initial=0.02, backoff_max=0.1)


def _rows(dsn: str) -> list[tuple[str, str, int, str | None]]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT id::text, status, attempts, submission_id FROM hardening_outbox ORDER BY seq")
        return list(cur.fetchall())


def _down_dsn() -> Secret:
    # A closed port on loopback: the database is "down" (connection refused at once).
    return Secret(f"postgresql://orchestrator:db-down-canary-pw@127.0.0.1:{free_port()}/ledger", "DATABASE_URL")


def test_pair_is_queued_when_agentbench_is_down_and_the_next_run_delivers_it_once(
    pg_dsn: str, tmp_path: Path, agentbench: AgentbenchPeer, token: Secret
) -> None:
    agentbench.down()
    outbox = Outbox(Secret(pg_dsn), tmp_path)
    report = emit([failure()], outbox, _client(agentbench, token), budget_seconds=0.5)
    outcome = report.to_outcome()
    assert (outcome.dpo_pairs_generated, outcome.delivered, outcome.queued) == (1, 0, 1)
    assert outcome.fallback_file is None
    assert report.events[0].stored == "database"
    assert [r[1] for r in _rows(pg_dsn)] == ["pending"]
    outbox.close()

    agentbench.up()
    next_run = Outbox(Secret(pg_dsn), tmp_path)
    delivered = flush(next_run, _client(agentbench, token), budget_seconds=2)
    assert (delivered.delivered, delivered.remaining) == (1, 0)
    assert again_nothing(next_run, agentbench, token)
    pair_id = report.events[0].id
    assert list(agentbench.stored) == [pair_id]
    assert agentbench.duplicates == 0
    assert len(agentbench.received) == 1
    assert agentbench.received[0].headers["idempotency-key"] == pair_id
    assert agentbench.stored[pair_id] == build_pair(failure()).to_json()
    [(row_id, status, attempts, submission)] = _rows(pg_dsn)
    assert (row_id, status, attempts, submission) == (pair_id, "delivered", 2, agentbench.submission_of(pair_id))


def again_nothing(outbox: Outbox, peer: AgentbenchPeer, token: Secret) -> bool:
    before = len(peer.received)
    report = flush(outbox, _client(peer, token), budget_seconds=1)
    return report.delivered == 0 and len(peer.received) == before


def test_hundred_failures_are_delivered_once_each_under_injected_faults(
    pg_dsn: str, tmp_path: Path, agentbench: AgentbenchPeer, token: Secret
) -> None:
    outbox = Outbox(Secret(pg_dsn), tmp_path)
    ids = [outbox.enqueue(build_pair(failure(f"d-{i:03d}"))).id for i in range(100)]
    # Faults spread over the run: every third request fails, in five different ways.
    kinds = [Fault(500), Fault(503, retry_after=0.05), Fault(close=True), Fault(429, retry_after=0.05), Fault(502)]
    agentbench.faults = [slot for kind in kinds * 6 for slot in (kind, None, None)]
    client = _client(agentbench, token)
    runs = 0
    while outbox.pending() and runs < 10:
        flush(outbox, client, budget_seconds=3)
        runs += 1
    assert outbox.pending() == []
    assert set(agentbench.stored) == set(ids)
    assert agentbench.duplicates == 0
    assert len(agentbench.received) == 100 + 30  # every fault cost exactly one extra request
    rows = _rows(pg_dsn)
    assert {r[1] for r in rows} == {"delivered"}
    assert all(r[3] == agentbench.submission_of(r[0]) for r in rows)


def test_delivery_is_oldest_first(pg_dsn: str, tmp_path: Path, agentbench: AgentbenchPeer, token: Secret) -> None:
    outbox = Outbox(Secret(pg_dsn), tmp_path)
    ids = [outbox.enqueue(build_pair(failure(f"d-{i}"))).id for i in range(30)]
    flush(outbox, _client(agentbench, token), budget_seconds=5, batch_size=7)
    assert list(agentbench.stored) == ids


def test_database_down_falls_back_to_a_file_and_the_next_run_imports_and_delivers(
    pg_dsn: str, tmp_path: Path, agentbench: AgentbenchPeer, token: Secret
) -> None:
    agentbench.down()
    report = emit([failure("d-a"), failure("d-b")], Outbox(_down_dsn(), tmp_path), _client(agentbench, token), 0.3)
    fallback = tmp_path / FALLBACK_FILE
    assert report.fallback_file == str(fallback)
    assert report.to_outcome().queued == 2
    lines = [json.loads(x) for x in fallback.read_text().splitlines()]
    assert [entry["id"] for entry in lines] == [e.id for e in report.events]
    assert "db-down-canary-pw" not in fallback.read_text()

    agentbench.up()
    next_run = Outbox(Secret(pg_dsn), tmp_path)
    delivered = flush(next_run, _client(agentbench, token), budget_seconds=3)
    assert (delivered.imported, delivered.delivered, delivered.remaining) == (2, 2, 0)
    assert not fallback.exists()
    assert list(agentbench.stored) == [e.id for e in report.events]
    assert [r[1] for r in _rows(pg_dsn)] == ["delivered", "delivered"]


def test_reimporting_a_file_after_a_crash_duplicates_nothing(
    pg_dsn: str, tmp_path: Path, agentbench: AgentbenchPeer, token: Secret
) -> None:
    Outbox(None, tmp_path).enqueue(build_pair(failure("d-file")))
    fallback = tmp_path / FALLBACK_FILE
    saved = fallback.read_text()
    outbox = Outbox(Secret(pg_dsn), tmp_path)
    assert flush(outbox, _client(agentbench, token), 2).delivered == 1
    # A crash between the import's commit and the file rewrite leaves the lines behind.
    fallback.write_text(saved)
    report = flush(outbox, _client(agentbench, token), 2)
    assert (report.imported, report.delivered) == (1, 0)
    assert len(_rows(pg_dsn)) == 1
    assert len(agentbench.received) == 1
    assert not fallback.exists()


def test_database_down_but_agentbench_up_delivers_from_the_file(
    tmp_path: Path, agentbench: AgentbenchPeer, token: Secret
) -> None:
    report = emit([failure("d-x")], Outbox(_down_dsn(), tmp_path), _client(agentbench, token), 2)
    assert report.to_outcome().delivered == 1
    assert report.to_outcome().agentbench_submission_id == agentbench.submission_of(report.events[0].id)
    assert not (tmp_path / FALLBACK_FILE).exists()
    assert again_nothing(Outbox(None, tmp_path), agentbench, token)


def test_two_concurrent_flushes_never_send_the_same_pair_twice(
    pg_dsn: str, tmp_path: Path, agentbench: AgentbenchPeer, token: Secret
) -> None:
    seed = Outbox(Secret(pg_dsn), tmp_path)
    ids = {seed.enqueue(build_pair(failure(f"d-{i:03d}"))).id for i in range(200)}
    seed.close()
    # Each POST takes a little while, so the two flushers really overlap.
    agentbench.faults = [Fault(status=201, delay=0.002) for _ in range(200)]
    barrier = threading.Barrier(2)
    reports = []

    def run() -> None:
        outbox = Outbox(Secret(pg_dsn), tmp_path)
        client = _client(agentbench, token)
        barrier.wait()
        reports.append(flush(outbox, client, budget_seconds=20, batch_size=10))
        outbox.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(agentbench.stored) == ids
    assert len(agentbench.received) == 200
    assert agentbench.duplicates == 0
    assert sorted(r.delivered for r in reports) != [0, 200], "the two flushes did not overlap"
    assert sum(r.delivered for r in reports) == 200


def test_retry_after_is_honoured_within_the_budget(
    pg_dsn: str, tmp_path: Path, agentbench: AgentbenchPeer, token: Secret
) -> None:
    outbox = Outbox(Secret(pg_dsn), tmp_path)
    outbox.enqueue(build_pair(failure()))
    agentbench.faults = [Fault(429, retry_after=0.4)]
    began = time.monotonic()
    assert flush(outbox, _client(agentbench, token), budget_seconds=3).delivered == 1
    assert time.monotonic() - began >= 0.4


def test_a_retry_after_beyond_the_budget_is_not_waited_for(
    pg_dsn: str, tmp_path: Path, agentbench: AgentbenchPeer, token: Secret
) -> None:
    outbox = Outbox(Secret(pg_dsn), tmp_path)
    outbox.enqueue(build_pair(failure()))
    agentbench.faults = [Fault(429, retry_after=30)]
    began = time.monotonic()
    report = flush(outbox, _client(agentbench, token), budget_seconds=1)
    # One request, refused: no retry was made, so no wait preceded one.
    assert len(agentbench.received) == 1
    assert time.monotonic() - began < 30, "the 30 s asked for were not waited"
    assert (report.delivered, report.remaining) == (0, 1)
    assert "429" in (report.stopped or "")
    [(_, status, attempts, _)] = _rows(pg_dsn)
    assert (status, attempts) == ("pending", 1)


def test_slow_answer_is_resent_with_the_same_idempotency_key(
    pg_dsn: str, tmp_path: Path, agentbench: AgentbenchPeer, token: Secret
) -> None:
    outbox = Outbox(Secret(pg_dsn), tmp_path)
    event = outbox.enqueue(build_pair(failure()))
    # agentbench stores the pair but answers after the client gave up: the ambiguous case.
    agentbench.faults = [Fault(status=201, delay=0.8, store=True)]
    report = flush(outbox, _client(agentbench, token, timeout=0.3), budget_seconds=3)
    assert report.delivered == 1
    keys = [r.key for r in agentbench.received]
    assert keys == [event.id, event.id]
    assert list(agentbench.stored) == [event.id]
    assert [r[1] for r in _rows(pg_dsn)] == ["delivered"]


def test_a_rejected_pair_is_kept_and_does_not_block_the_queue(
    pg_dsn: str, tmp_path: Path, agentbench: AgentbenchPeer, token: Secret
) -> None:
    outbox = Outbox(Secret(pg_dsn), tmp_path)
    first = outbox.enqueue(build_pair(failure("d-1"))).id
    second = outbox.enqueue(build_pair(failure("d-2"))).id
    agentbench.faults = [Fault(422)]
    report = flush(outbox, _client(agentbench, token), budget_seconds=2)
    assert (report.rejected, report.delivered, report.remaining) == (1, 1, 0)
    assert list(agentbench.stored) == [second]
    statuses = {r[0]: r[1] for r in _rows(pg_dsn)}
    assert statuses == {first: "rejected", second: "delivered"}


def test_a_bad_token_stops_the_flush_and_keeps_everything_queued(
    pg_dsn: str, tmp_path: Path, agentbench: AgentbenchPeer
) -> None:
    outbox = Outbox(Secret(pg_dsn), tmp_path)
    for i in range(3):
        outbox.enqueue(build_pair(failure(f"d-{i}")))
    report = flush(outbox, _client(agentbench, Secret("wrong-token-xyz")), budget_seconds=2)
    assert (report.delivered, report.remaining) == (0, 3)
    assert "401" in (report.stopped or "") and "token_env_var" in (report.stopped or "")
    assert len(agentbench.received) == 1


def test_nothing_raises_when_no_store_is_writable(tmp_path: Path, agentbench: AgentbenchPeer, token: Secret) -> None:
    blocker = tmp_path / "ws"
    blocker.write_text("a file where the workspace should be")
    report = emit([failure()], Outbox(_down_dsn(), blocker), _client(agentbench, token), 0.5)
    assert (report.pairs_generated, report.lost, len(report.events)) == (1, 1, 0)


def test_enqueueing_the_same_pair_twice_keeps_one_row(pg_dsn: str, tmp_path: Path) -> None:
    outbox = Outbox(Secret(pg_dsn), tmp_path)
    outbox.enqueue(build_pair(failure()))
    outbox.enqueue(build_pair(failure()))
    assert len(_rows(pg_dsn)) == 1


@pytest.mark.parametrize("schema", ["deploy_ledger"])
def test_the_outbox_lives_in_a_configured_schema(pg_dsn: str, tmp_path: Path, schema: str) -> None:
    Outbox(Secret(pg_dsn), tmp_path, schema=schema).enqueue(build_pair(failure()))
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {schema}.hardening_outbox")
        assert cur.fetchone() == (1,)
