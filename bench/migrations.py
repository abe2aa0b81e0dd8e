"""Benchmark: apply 300 migrations (CREATE TABLE + CREATE INDEX each) and undo them.

Starts its own PostgreSQL on 127.0.0.1 and measures, each on a fresh database:
  ours   discover + lock + plan (squawk lint of all 300 in one process) + apply, per migration
  floor  raw psycopg2: one transaction per file plus one insert into a tracking table
  yoyo   yoyo-migrations 9.0.0 applying the same SQL
  undo   ours, undoing the 300 newest first with their U scripts
Run: python bench/migrations.py   (last line: `migrations: ours_ms=X floor_ms=X yoyo_ms=X undo_ms=X`)
"""

from __future__ import annotations

import sys
import tempfile
import time
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
    server = start_server()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-migrations-") as tmp:
            root = Path(tmp)
            _write_ours(root / "ws")
            _write_yoyo(root / "yoyo")
            floor = bench_floor(server, root / "ws")
            yoyo = bench_yoyo(server, root / "yoyo")
            ours, lint_s, undo = bench_ours(server, root / "ws")
    finally:
        stop_server(server)
    per = {name: seconds * 1000 / COUNT for name, seconds in (("ours", ours), ("floor", floor), ("yoyo", yoyo))}
    undo_ms = undo * 1000 / COUNT
    print(f"{COUNT} migrations (CREATE TABLE + CREATE INDEX), PostgreSQL on 127.0.0.1, each on a fresh database")
    print(f"{'runner':<44}{'total s':>10}{'ms/migration':>15}")
    rows = [
        ("ours (discover+lock+plan+lint+apply)", ours, per["ours"]),
        ("  of which squawk lint (one process)", lint_s, lint_s * 1000 / COUNT),
        ("floor (raw psycopg2, tx per file + row)", floor, per["floor"]),
        ("yoyo-migrations 9.0.0", yoyo, per["yoyo"]),
        ("ours undo (U scripts, newest first)", undo, undo_ms),
    ]
    for label, total, each in rows:
        print(f"{label:<44}{total:>10.3f}{each:>15.2f}")
    print(
        f"ours / floor = {per['ours'] / per['floor']:.2f}x (target <= 1.3x); "
        f"yoyo / ours = {per['yoyo'] / per['ours']:.2f}x (target >= 2x)"
    )
    print(
        f"migrations: ours_ms={per['ours']:.2f} floor_ms={per['floor']:.2f} "
        f"yoyo_ms={per['yoyo']:.2f} undo_ms={undo_ms:.2f}"
    )


if __name__ == "__main__":
    main()
