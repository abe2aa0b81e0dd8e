"""Benchmark: apply 300 migrations (CREATE TABLE + CREATE INDEX each) and undo them.

Starts its own PostgreSQL on 127.0.0.1 and measures, each run on a fresh database, --rounds times
(default 3) interleaved with the order turning each round, medians and median ratios reported:
  ours   discover + lock + plan (squawk lint of all 300 in one process) + apply, per migration
  floor  raw psycopg2: one transaction per file plus one insert into a tracking table (per file the
         script, the insert and the commit, after the BEGIN psycopg2 sends on its own; ours sends its
         BEGIN with the script: three round trips a migration)
  yoyo   yoyo-migrations 9.0.0 applying the same SQL
  undo   ours, undoing the 300 newest first with their U scripts
Run: python bench/migrations.py [--rounds N]   (last line: `migrations: ours_ms=X floor_ms=X yoyo_ms=X
undo_ms=X ratio_floor=X ratio_yoyo=X rounds=N`, the ratios being ours/floor and yoyo/ours)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg2
from yoyo import get_backend, read_migrations

from orchestrator.contract import MigrationsConfig
from orchestrator.migrations import MigrationRunner, discover
from orchestrator.redaction import Secret
from tests.peers.postgres import PostgresServer, start_server, stop_server

COUNT = 300


def _sql(n: int) -> tuple[str, str]:
    up = f"CREATE TABLE t{n} (id bigint PRIMARY KEY, name text);\nCREATE INDEX t{n}_name ON t{n} (name);\n"
    return up, f"DROP TABLE t{n};\n"


def _write_ours(root: Path) -> None:
    folder = root / "db"
    folder.mkdir(parents=True)
    for n in range(1, COUNT + 1):
        up, down = _sql(n)
        (folder / f"V{n}__create_t{n}.sql").write_text(up)
        (folder / f"U{n}__create_t{n}.sql").write_text(down)


def _write_yoyo(root: Path) -> None:
    root.mkdir(parents=True)
    for n in range(1, COUNT + 1):
        up, down = _sql(n)
        (root / f"{n:04d}_create_t{n}.sql").write_text(up)
        (root / f"{n:04d}_create_t{n}.rollback.sql").write_text(down)


def bench_ours(server: PostgresServer, workspace: Path) -> tuple[float, float, float]:
    dsn = Secret(server.dsn(server.create_database()), "dsn")
    started = time.perf_counter()
    scripts = discover([Path("db")], workspace)
    runner = MigrationRunner(dsn, MigrationsConfig(), deployment_id="bench", installed_by="bench")
    with runner:
        plan = runner.plan(scripts, approved={s.filename: s.checksum for s in scripts})
        applied = runner.apply(plan)
        total = time.perf_counter() - started
        assert len(applied) == COUNT and all(r.success for r in applied)
        undo_started = time.perf_counter()
        undone = runner.undo(applied)
        undo_total = time.perf_counter() - undo_started
        assert len(undone) == COUNT and all(r.success for r in undone)
    return total, plan.lint.duration_ms / 1000, undo_total


def bench_floor(server: PostgresServer, workspace: Path) -> float:
    conn = psycopg2.connect(server.dsn(server.create_database()))
    files = sorted((workspace / "db").glob("V*.sql"), key=lambda p: int(p.name[1:].split("__")[0]))
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE applied (name text PRIMARY KEY, applied_at timestamptz DEFAULT now())")
        conn.commit()
        for path in files:
            cur.execute(path.read_text())
            cur.execute("INSERT INTO applied (name) VALUES (%s)", (path.name,))
            conn.commit()
    total = time.perf_counter() - started
    conn.close()
    return total


def bench_yoyo(server: PostgresServer, folder: Path) -> float:
    backend = get_backend(server.dsn(server.create_database()))
    started = time.perf_counter()
    migrations = read_migrations(str(folder))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))
    total = time.perf_counter() - started
    assert len(backend.to_apply(read_migrations(str(folder)))) == 0
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of each runner, interleaved")
    rounds = parser.parse_args().rounds
    measured: dict[str, list[float]] = {"ours": [], "lint": [], "floor": [], "yoyo": [], "undo": []}
    server = start_server()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-migrations-") as tmp:
            root = Path(tmp)
            _write_ours(root / "ws")
            _write_yoyo(root / "yoyo")

            def ours() -> None:
                total, lint_s, undo = bench_ours(server, root / "ws")
                measured["ours"].append(total)
                measured["lint"].append(lint_s)
                measured["undo"].append(undo)

            runners: list[Callable[[], None]] = [
                lambda: measured["floor"].append(bench_floor(server, root / "ws")),
                lambda: measured["yoyo"].append(bench_yoyo(server, root / "yoyo")),
                ours,
            ]
            # Interleaved, the order turning each round: a machine that speeds up or slows down meanwhile
            # (other work, caches warming) weighs on every runner alike.
            for number in range(rounds):
                for runner in runners[number % 3 :] + runners[: number % 3]:
                    runner()
    finally:
        stop_server(server)

    def per(name: str) -> float:
        return statistics.median(measured[name]) * 1000 / COUNT

    ratio_floor = statistics.median(o / f for o, f in zip(measured["ours"], measured["floor"], strict=True))
    ratio_yoyo = statistics.median(y / o for y, o in zip(measured["yoyo"], measured["ours"], strict=True))
    print(
        f"{COUNT} migrations (CREATE TABLE + CREATE INDEX), PostgreSQL on 127.0.0.1, each run on a fresh database; "
        f"{rounds} rounds, interleaved; medians"
    )
    print(f"{'runner':<44}{'total s':>10}{'ms/migration':>15}{'min..max ms':>18}")
    rows = [
        ("ours (discover+lock+plan+lint+apply)", "ours"),
        ("  of which squawk lint (one process)", "lint"),
        ("floor (raw psycopg2, tx per file + row)", "floor"),
        ("yoyo-migrations 9.0.0", "yoyo"),
        ("ours undo (U scripts, newest first)", "undo"),
    ]
    for label, name in rows:
        each = [t * 1000 / COUNT for t in measured[name]]
        spread = f"{min(each):.2f}..{max(each):.2f}"
        print(f"{label:<44}{statistics.median(measured[name]):>10.3f}{per(name):>15.2f}{spread:>18}")
    print(
        f"ours / floor = {ratio_floor:.2f}x (target <= 1.3x); yoyo / ours = {ratio_yoyo:.2f}x (target >= 2x); "
        "median of the per-round ratios"
    )
    print(
        f"migrations: ours_ms={per('ours'):.2f} floor_ms={per('floor'):.2f} yoyo_ms={per('yoyo'):.2f} "
        f"undo_ms={per('undo'):.2f} ratio_floor={ratio_floor:.2f} ratio_yoyo={ratio_yoyo:.2f} rounds={rounds}"
    )


if __name__ == "__main__":
    main()
