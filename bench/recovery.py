"""Benchmark: the crash matrix, and the local supervisor's gap.

    python bench/recovery.py

Starts its own PostgreSQL and agentbench stand-in on 127.0.0.1, then for each crash point of
tests/recovery/matrix.py: deploys v1 on the local platform (real release processes), deploys v2
in a subprocess and SIGKILLs it at the point (exactly: a test-only crash point, or while a real
side effect holds it), then runs `deploy-orchestrator recover` and checks everything (serving
release verified, schema, ledger row settled, lock free, the pair delivered exactly once).

The peer is the same state before recovery: what a crash leaves when nothing reconciles it (the
behaviour issue 11 reported, 0 of 8 points settled), checked with the same checks.

Columns: crash point, the step the dead run had reached, what recovery did, seconds from `recover`
starting until the good release served verified (its verification's own timestamp; interpreter
start-up included), recovery's own time (finding the dead run to its release verified and the dead
one stopped), and the whole `recover` run. Then the supervisor gap: SIGKILL of the local supervisor
under load until the public address answers again (tests/platforms/local/supervisor_gap.py).

Last line: `recovery: points=N consistent=N max_recover_s=X supervisor_gap_s=X unrecovered_consistent=N
max_in_process_s=X`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from orchestrator.config import parse_config
from orchestrator.platforms.local import LocalPlatform
from tests.peers.agentbench import AgentbenchPeer
from tests.peers.postgres import PostgresServer, start_server, stop_server
from tests.platforms.local.supervisor_gap import measure_supervisor_gap
from tests.recovery.matrix import POINTS, Outcome, Site, run_point


def supervisor_gap(server: PostgresServer, agentbench: AgentbenchPeer, root: Path) -> float:
    database = server.create_database()
    site = Site(root, server.dsn(database), agentbench)
    try:
        site.prepare("v1", ["db1"])
        if site.orchestrator(*site.deploy_args("v1")).wait(120) != 0:
            raise SystemExit(f"bench/recovery.py: deploying v1 for the supervisor gap failed; see {root}")
        local = parse_config(site.config, root).deployment.local
        assert local is not None
        return measure_supervisor_gap(LocalPlatform(local, root)).gap_s
    finally:
        site.stop()
        server.drop_database(database)


def main() -> int:
    console = Console(width=160)
    server = start_server()
    agentbench = AgentbenchPeer(token="agentbench-token-canary-crash-5e")
    outcomes: list[Outcome] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
            for number, point in enumerate(POINTS):
                database = server.create_database()
                try:
                    outcomes.append(run_point(point, Path(tmp) / f"point{number}", server.dsn(database), agentbench))
                finally:
                    server.drop_database(database)
            gap = supervisor_gap(server, agentbench, Path(tmp) / "gap")
    finally:
        agentbench.close()
        stop_server(server)

    table = Table(title="Crash matrix: SIGKILL of the orchestrator, then `deploy-orchestrator recover` (local)")
    columns = (
        "crash point",
        "died at step",
        "what recovery did",
        "serving s",
        "recovery s",
        "recover run s",
        "consistent",
    )
    for column in columns:
        table.add_column(column, overflow="fold")
    for o in outcomes:
        verdict = "yes" if o.consistent else "NO: " + "; ".join(o.problems)
        table.add_row(
            o.point.label,
            o.crashed_step,
            "\n".join(o.actions),
            f"{o.recover_seconds:.2f}",
            f"{o.in_process_seconds:.2f}",
            f"{o.wall_seconds:.2f}",
            verdict,
        )
    console.print(table)
    unrecovered = sum(1 for o in outcomes if not o.unrecovered)
    console.print(
        f"Without recovery (the peer: the state the crash left, same checks): {unrecovered} of {len(outcomes)} "
        f"consistent; e.g. {outcomes[0].unrecovered[:2] if outcomes and outcomes[0].unrecovered else '-'}"
    )
    console.print(f"Supervisor SIGKILL under load: the public address answered again after {gap:.3f} s")
    console.print("(2 cores shared with other work while measured: figures are upper bounds)")
    consistent = sum(1 for o in outcomes if o.consistent)
    worst = max((o.recover_seconds for o in outcomes), default=0.0)
    worst_inside = max((o.in_process_seconds for o in outcomes), default=0.0)
    print(
        f"recovery: points={len(outcomes)} consistent={consistent} max_recover_s={worst:.2f} "
        f"supervisor_gap_s={gap:.3f} unrecovered_consistent={unrecovered} max_in_process_s={worst_inside:.2f}"
    )
    return 0 if consistent == len(outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
