"""Benchmark: deliver 1,000 queued preference pairs in one flush, counting losses and duplicates at the server.

    python bench/outbox.py [--pairs N]

Starts its own PostgreSQL (tests/peers/postgres.py) and a local agentbench (tests/peers/agentbench.py),
both on 127.0.0.1. Measures, on the same queue:
  - ours:  `hardening.flush()` - one keep-alive `requests.Session`, rows claimed 100 at a time with
           FOR UPDATE SKIP LOCKED and their outcomes written back in one UPDATE per claim;
  - naive: the peer line - one new connection per POST and one claim/UPDATE/COMMIT per pair.
Ends with one line: `outbox: pairs=N lost=N duplicated=N per_s=X` (ours).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg2  # noqa: E402
import requests  # noqa: E402

from orchestrator.hardening import AgentbenchClient, Outbox, build_pair, flush  # noqa: E402
from orchestrator.hardening.pairs import FailureContext  # noqa: E402
from orchestrator.redaction import Secret  # noqa: E402
from tests.peers import postgres  # noqa: E402
from tests.peers.agentbench import AgentbenchPeer  # noqa: E402


def _context(i: int) -> FailureContext:
    return FailureContext(
        deployment_id=f"bench-{i:05d}",
        environment="production",
        step="health",
        reason=f"health check /health answered 503 (expected 200), attempt {i}",
        traffic_moved=i % 3 == 0,
        rolled_back=True,
        rollback_failed=i % 50 == 0,
        new_version=f"v{i}",
        previous_version=f"v{i - 1}",
        strategy="blue_green",
        platform="local",
        validation_run_id=f"vr-{i}",
        log_excerpt=tuple(f"log line {n} of run {i}" for n in range(10)),
    )


def _queue(dsn: str, workspace: Path, pairs: int) -> tuple[list[str], float]:
    outbox = Outbox(Secret(dsn), workspace)
    began = time.perf_counter()
    ids = [outbox.enqueue(build_pair(_context(i))).id for i in range(pairs)]
    elapsed = time.perf_counter() - began
    outbox.close()
    return ids, elapsed


def _naive(dsn: str, url: str, token: str) -> int:
    """One connection per POST, one transaction per pair: what a first draft would do."""
    conn = psycopg2.connect(dsn)
    sent = 0
    while True:
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT id::text, pair FROM hardening_outbox WHERE status = 'pending'"
                " ORDER BY created_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED"
            )
            row = cur.fetchone()
            if row is None:
                break
            response = requests.post(
                f"{url}/api/dpo-pairs",
                json=row[1],
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": row[0]},
                timeout=10,
            )
            response.raise_for_status()
            cur.execute(
                "UPDATE hardening_outbox SET status = 'delivered', submission_id = %s, delivered_at = now()"
                " WHERE id = %s::uuid",
                (response.json()["submission_id"], row[0]),
            )
            sent += 1
    conn.close()
    return sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    args = parser.parse_args()
    server = postgres.start_server()
    rows: list[tuple[str, int, int, int, float]] = []
    try:
        with TemporaryDirectory() as tmp:
            workspace = Path(tmp)
            # ours
            dsn = server.dsn(server.create_database())
            ids, enqueue_s = _queue(dsn, workspace, args.pairs)
            peer = AgentbenchPeer(keep_bodies=False)
            client = AgentbenchClient(peer.url, Secret(peer.token, "AGENTBENCH_TOKEN"))
            began = time.perf_counter()
            report = flush(Outbox(Secret(dsn), workspace), client, budget_seconds=110, batch_size=100)
            ours_s = time.perf_counter() - began
            stored = peer.stored
            ours_lost = len(set(ids) - set(stored))
            rows.append(("ours: keep-alive, claim 100", report.delivered, ours_lost, peer.duplicates, ours_s))
            peer.close()
            # naive peer line, same queue size
            dsn2 = server.dsn(server.create_database())
            ids2, _ = _queue(dsn2, workspace, args.pairs)
            peer2 = AgentbenchPeer(keep_bodies=False)
            began = time.perf_counter()
            sent = _naive(dsn2, peer2.url, peer2.token)
            naive_s = time.perf_counter() - began
            naive_lost = len(set(ids2) - set(peer2.stored))
            rows.append(("naive: conn per POST, txn per pair", sent, naive_lost, peer2.duplicates, naive_s))
            peer2.close()
    finally:
        postgres.stop_server(server)

    print(f"\nqueued {args.pairs} pairs in {enqueue_s:.2f}s ({args.pairs / enqueue_s:.0f}/s, one INSERT+COMMIT each)\n")
    print(f"{'delivery':<36} {'delivered':>9} {'lost':>5} {'dup':>5} {'seconds':>8} {'pairs/s':>8}")
    for name, delivered, lost, dup, seconds in rows:
        print(f"{name:<36} {delivered:>9} {lost:>5} {dup:>5} {seconds:>8.2f} {delivered / seconds:>8.0f}")
    print()
    ours = rows[0]
    print(f"outbox: pairs={ours[1]} lost={ours[2]} duplicated={ours[3]} per_s={ours[1] / ours[4]:.0f}")
    return 0 if ours[2] == 0 and ours[3] == 0 and ours[1] == args.pairs else 1


if __name__ == "__main__":
    sys.exit(main())
