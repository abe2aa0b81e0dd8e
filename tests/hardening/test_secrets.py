"""Canary secrets never leave: not in pairs, outbox rows, ledger rows, fallback files, requests, pages or logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import psycopg2
import pytest

from orchestrator.contract import HealthProbe, MetricsConfig, NotificationsConfig
from orchestrator.hardening import AgentbenchClient, Outbox, emit, flush
from orchestrator.ledger import Ledger
from orchestrator.metrics import record_run
from orchestrator.notify import Notifier
from orchestrator.redaction import Secret, install_filter
from tests.hardening.conftest import CANARY_TOKEN
from tests.hardening.samples import failure, result
from tests.peers.agentbench import AgentbenchPeer
from tests.peers.http import HttpPeer, Reply
from tests.peers.postgres import free_port

ERROR_CANARY = "api-key-canary-leak-93kd"
ROUTING_CANARY = "pd-routing-canary-55x1"
HOOK_CANARY = "/services/hook-canary-0p3n"


def _dump_tables(dsn: str) -> str:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        text = []
        for table in ("hardening_outbox", "deployment_log", "pipeline_lineage"):
            cur.execute(f"SELECT row_to_json(t)::text FROM {table} t")
            text += [r[0] for r in cur.fetchall()]
        return "\n".join(text)


def test_canaries_never_appear_anywhere(
    pg_dsn: str, tmp_path: Path, agentbench: AgentbenchPeer, http_peer: HttpPeer, caplog: pytest.LogCaptureFixture
) -> None:
    Secret(ERROR_CANARY, "APP_API_KEY")  # registered at start-up, as the CLI does with every secret it reads
    dsn = Secret(pg_dsn, "DATABASE_URL")
    db_password = "pw-test-canary-5f1e"  # the test server's password (tests/peers/postgres.py)
    assert db_password in pg_dsn
    down_dsn = Secret(f"postgresql://orchestrator:{db_password}@127.0.0.1:{free_port()}/x", "DATABASE_URL")
    token = Secret(CANARY_TOKEN, "AGENTBENCH_TOKEN")
    install_filter(caplog.handler)
    leak = f"upstream said: key={ERROR_CANARY} dsn={pg_dsn}"
    ctx = failure(
        reason=leak,
        log_excerpt=(leak, f"Authorization: Bearer {CANARY_TOKEN}"),
        failing_probes=(HealthProbe("/health", 500, 9.0, False, "t", detail=leak),),
        rollback_failed=True,
        rollback_error=leak,
    )
    http_peer.route("POST", HOOK_CANARY, Reply(200, "ok"))
    http_peer.route("POST", "/v2/enqueue", Reply(202, {"status": "success"}))
    with caplog.at_level(logging.DEBUG):
        agentbench.down()
        emit([ctx], Outbox(down_dsn, tmp_path), AgentbenchClient(agentbench.url, token), 0.2)  # file fallback
        fallback = (tmp_path / ".deploy-orchestrator/outbox/pending.jsonl").read_text()
        agentbench.up()
        flush(Outbox(dsn, tmp_path), AgentbenchClient(agentbench.url, token), 2)
        done = result("failed", rollback_failed=True, error=leak)
        ledger = Ledger(dsn)
        ledger.finish(done)
        Ledger(down_dsn).finish(done)
        env = {"HOOK": http_peer.url + HOOK_CANARY, "PD": ROUTING_CANARY}
        config = NotificationsConfig(
            webhook_url_env_var="HOOK", paging_url=http_peer.url + "/v2/enqueue", paging_routing_key_env_var="PD"
        )
        notifier = Notifier(config, env)
        assert notifier.announce(done)
        assert notifier.page(done, leak)
        record_run(done, MetricsConfig(pushgateway_url=f"http://127.0.0.1:{free_port()}"), tmp_path)

    assert len(agentbench.stored) == 1
    bodies = [r.body.decode() for r in agentbench.received]
    other_headers = [
        json.dumps({k: v for k, v in r.headers.items() if k != "authorization"}) for r in agentbench.received
    ]
    assert all(r.headers["authorization"] == f"Bearer {CANARY_TOKEN}" for r in agentbench.received)
    webhook = http_peer.requests_to(HOOK_CANARY)[0].body.decode()
    page = http_peer.requests_to("/v2/enqueue")[0].json()
    assert page.pop("routing_key") == ROUTING_CANARY  # the one place the routing key belongs
    places = {
        "fallback file": fallback,
        "tables": _dump_tables(pg_dsn),
        "agentbench bodies": "\n".join(bodies),
        "agentbench headers": "\n".join(other_headers),
        "webhook": webhook,
        "page": json.dumps(page),
        "logs": caplog.text,
        "metrics": (tmp_path / ".deploy-orchestrator/metrics.prom").read_text(),
    }
    for place, text in places.items():
        for canary in (ERROR_CANARY, CANARY_TOKEN, db_password, ROUTING_CANARY, HOOK_CANARY):
            assert canary not in text, f"{canary} leaked into {place}"
    assert "***" in places["tables"] and "***" in places["page"]
