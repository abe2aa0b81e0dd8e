"""The runner's session guarantees: the lock, lock_timeout, no-transaction scripts, poolers, crashes, secrets."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg2
import pytest

from orchestrator.contract import MigrationResult
from orchestrator.errors import LockError, MigrationError
from tests.migrations.conftest import PgBouncer, RunnerFactory, Workspace
from tests.peers import postgres

Sql = Callable[..., list[tuple[Any, ...]]]


def _wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def _columns(sql: Sql, table: str) -> list[str]:
    return [
        r[0]
        for r in sql(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            (table,),
        )
    ]


def test_second_run_waits_for_the_lock_then_fails_naming_the_holder(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql
) -> None:
    with make_runner(deployment_id="dep-first"):
        (holder_pid,) = sql(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'deploy-orchestrator dep-first'"
        )[0]
        started = time.monotonic()
        with pytest.raises(LockError) as caught, make_runner(deployment_id="dep-second", lock_wait_seconds=0.6):
            pass
        waited = time.monotonic() - started
    message = str(caught.value)
    assert waited >= 0.6
    assert (
        f"pid {holder_pid}, application_name 'deploy-orchestrator dep-first', client 127.0.0.1, connected since"
        in message
    )
    assert "Waited 0.6 s (migrations.lock_wait_seconds)" in message
    assert f"SELECT pg_terminate_backend({holder_pid})" in message
    holder: Any = caught.value
    assert holder.holder.pid == holder_pid
    # The first run has exited: the lock is free again.
    with make_runner(deployment_id="dep-third", lock_wait_seconds=0):
        pass


def test_a_waiting_run_proceeds_when_the_holder_finishes(workspace: Workspace, make_runner: RunnerFactory) -> None:
    first = make_runner(deployment_id="dep-first").__enter__()
    timer = threading.Timer(0.4, first.__exit__, args=(None, None, None))
    timer.start()
    started = time.monotonic()
    with make_runner(deployment_id="dep-second", lock_wait_seconds=10) as second:
        assert second.history() == []
    # It waited for the holder (released at 0.4 s) and went on, well inside its own 10 s lock wait.
    assert time.monotonic() - started > 0.3
    timer.join()


def test_concurrent_runs_apply_each_migration_once(workspace: Workspace, make_runner: RunnerFactory, sql: Sql) -> None:
    for n in range(1, 6):
        workspace.write(f"V{n}__t{n}.sql", f"CREATE TABLE t{n} (id bigint); SELECT pg_sleep(0.05);")
        workspace.write(f"U{n}__t{n}.sql", f"DROP TABLE t{n};")
    outcomes: list[list[MigrationResult] | BaseException] = []

    def deploy(name: str) -> None:
        try:
            with make_runner(deployment_id=name, lock_wait_seconds=10, lint_enabled=False) as runner:
                outcomes.append(runner.apply(runner.plan(workspace.scripts(), approved=None)))
        except BaseException as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=deploy, args=(f"dep-{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(o) for o in outcomes if isinstance(o, list)) == [0, 0, 5], outcomes
    assert sql("SELECT count(*) FROM deploy_orchestrator.schema_history") == [(5,)]


def test_no_transaction_script_builds_an_index_concurrently_under_the_lock(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql
) -> None:
    workspace.write(
        "V1__orders.sql",
        "CREATE TABLE orders (id bigint, note text);\n"
        "INSERT INTO orders SELECT g, 'n' FROM generate_series(1, 1000) g;",
    )
    workspace.write("U1__orders.sql", "DROP TABLE orders;")
    workspace.write(
        "V2__orders_note_index.sql",
        "-- deploy-orchestrator: no-transaction\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_note ON orders (note);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_id ON orders (id);\n",
    )
    workspace.write(
        "U2__orders_note_index.sql",
        "-- deploy-orchestrator: no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS orders_note;\n"
        "DROP INDEX CONCURRENTLY IF EXISTS orders_id;\n",
    )
    # Another deploy polling for the lock the whole time must not stall the concurrent build.
    with make_runner(deployment_id="dep-1") as runner:
        waited: list[BaseException] = []
        waiter = threading.Thread(target=_wait_for_lock, args=(make_runner, waited))
        waiter.start()
        applied = runner.apply(runner.plan(workspace.scripts(), approved=None))
        valid = sql(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname LIKE 'orders_%' ORDER BY 1"
        )
        assert valid == [("orders_id", True), ("orders_note", True)]
        assert [r.success for r in applied] == [True, True]
        undone = runner.undo(applied)
        waiter.join()
    assert [type(e) for e in waited] == [LockError]
    assert [r.filename for r in undone] == ["U2__orders_note_index.sql", "U1__orders.sql"]
    assert sql("SELECT count(*) FROM pg_class WHERE relname LIKE 'orders%'") == [(0,)]


def _wait_for_lock(make_runner: RunnerFactory, outcome: list[BaseException]) -> None:
    try:
        with make_runner(deployment_id="dep-waiting", lock_wait_seconds=1.5):
            pass
    except BaseException as exc:
        outcome.append(exc)


def test_concurrent_index_in_a_transactional_script_fails_with_the_header_hint(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql
) -> None:
    workspace.write(
        "V1__orders.sql", "CREATE TABLE orders (id bigint);\nCREATE INDEX CONCURRENTLY orders_id ON orders (id);"
    )
    workspace.write("U1__orders.sql", "DROP TABLE orders;")
    with make_runner(lint_enabled=False) as runner, pytest.raises(MigrationError) as caught:
        runner.apply(runner.plan(workspace.scripts(), approved=None))
    assert "SQLSTATE 25001" in str(caught.value)
    assert "add the header line '-- deploy-orchestrator: no-transaction'" in str(caught.value)
    assert sql("SELECT count(*) FROM pg_class WHERE relname = 'orders'") == [(0,)]


def test_migration_blocked_by_a_long_transaction_fails_at_lock_timeout(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql, pg_dsn: str
) -> None:
    workspace.write("V1__orders.sql", "CREATE TABLE orders (id bigint);")
    workspace.write("U1__orders.sql", "DROP TABLE orders;")
    with make_runner() as runner:
        runner.apply(runner.plan(workspace.scripts(), approved=None))
    workspace.write("V2__orders_note.sql", "ALTER TABLE orders ADD COLUMN note text;\nCREATE TABLE side (id bigint);")
    workspace.write("U2__orders_note.sql", "ALTER TABLE orders DROP COLUMN note; DROP TABLE side;")
    reader = psycopg2.connect(pg_dsn)
    try:
        with reader.cursor() as cur:
            cur.execute("SELECT * FROM orders")  # an open transaction holding ACCESS SHARE on orders
        with make_runner(lock_timeout_seconds=0.3) as runner:
            plan = runner.plan(workspace.scripts(), approved=None)
            # The reader holds its lock until `finally`: only lock_timeout can end the wait.
            with pytest.raises(MigrationError) as caught:
                runner.apply(plan)
            assert [r.script for r in runner.history()] == ["V1__orders.sql"]
    finally:
        reader.rollback()
    message = str(caught.value)
    assert "apply of V2__orders_note.sql failed: canceling statement due to lock timeout (SQLSTATE 55P03)" in message
    assert "lock_timeout (0.3 s, migrations.lock_timeout_seconds)" in message
    assert _columns(sql, "orders") == ["id"]
    assert sql("SELECT count(*) FROM pg_class WHERE relname = 'side'") == [(0,)]
    with make_runner(lock_timeout_seconds=0.3) as runner:
        runner.apply(runner.plan(workspace.scripts(), approved=None))
    assert _columns(sql, "orders") == ["id", "note"]


def test_transaction_pooler_is_refused_naming_the_session_port(
    workspace: Workspace,
    make_runner: RunnerFactory,
    sql: Sql,
    pg_server: postgres.PostgresServer,
    pgbouncer: Callable[[str], PgBouncer],
    pg_dsn: str,
) -> None:
    workspace.write("V1__orders.sql", "CREATE TABLE orders (id bigint);")
    workspace.write("U1__orders.sql", "DROP TABLE orders;")
    database = pg_dsn.rsplit("/", 1)[1]
    bouncer = pgbouncer("transaction")
    with pytest.raises(MigrationError) as caught, make_runner(dsn=bouncer.dsn(pg_server, database)):
        pass
    message = str(caught.value)
    assert (
        f"postgresql://orchestrator@127.0.0.1:{bouncer.port}/{database} goes through a connection pooler "
        "in transaction mode" in message
    )
    assert "session-mode pooler (port 5432)" in message
    assert pg_server.password not in message
    assert sql("SELECT count(*) FROM pg_namespace WHERE nspname = 'deploy_orchestrator'") == [(0,)]


def test_session_pooler_is_accepted(
    workspace: Workspace,
    make_runner: RunnerFactory,
    sql: Sql,
    pg_server: postgres.PostgresServer,
    pgbouncer: Callable[[str], PgBouncer],
    pg_dsn: str,
) -> None:
    workspace.write("V1__orders.sql", "CREATE TABLE orders (id bigint);")
    workspace.write("U1__orders.sql", "DROP TABLE orders;")
    bouncer = pgbouncer("session")
    with make_runner(dsn=bouncer.dsn(pg_server, pg_dsn.rsplit("/", 1)[1])) as runner:
        runner.apply(runner.plan(workspace.scripts(), approved=None))
    assert sql("SELECT count(*) FROM pg_class WHERE relname = 'orders'") == [(1,)]


def test_killed_backend_mid_migration_leaves_a_clean_history_and_the_next_run_reapplies(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql
) -> None:
    workspace.write("V1__orders.sql", "CREATE TABLE orders (id bigint);")
    workspace.write("U1__orders.sql", "DROP TABLE orders;")
    workspace.write("V2__slow.sql", "CREATE TABLE slow (id bigint);\nSELECT pg_sleep(30);")
    workspace.write("U2__slow.sql", "DROP TABLE slow;")
    failure: list[BaseException] = []

    def deploy() -> None:
        try:
            with make_runner(deployment_id="dep-crash") as runner:
                runner.apply(runner.plan(workspace.scripts(), approved=None))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=deploy)
    thread.start()
    pid = _wait_for(
        lambda: sql(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'deploy-orchestrator dep-crash' "
            "AND query LIKE '%%pg_sleep%%' AND state = 'active'"
        )
    )[0][0]
    sql("SELECT pg_terminate_backend(%s)", (pid,))
    thread.join(timeout=20)
    assert not thread.is_alive()
    (error,) = failure
    assert isinstance(error, MigrationError)
    assert "the database connection was lost during apply of V2__slow.sql" in str(error)
    assert "Run again to re-apply it" in str(error)
    assert [(r.filename, r.success) for r in error.results] == [("V1__orders.sql", True), ("V2__slow.sql", False)]  # type: ignore[attr-defined]

    assert sql("SELECT count(*) FROM pg_class WHERE relname = 'slow'") == [(0,)]
    workspace.write("V2__slow.sql", "CREATE TABLE slow (id bigint);")
    with make_runner(deployment_id="dep-retry", lock_wait_seconds=0) as runner:
        assert [r.script for r in runner.history()] == ["V1__orders.sql"]
        plan = runner.plan(workspace.scripts(), approved=None)
        assert [p.filename for p in plan.pending] == ["V2__slow.sql"]
        runner.apply(plan)
    assert sql("SELECT count(*) FROM pg_class WHERE relname = 'slow'") == [(1,)]


def test_the_dsn_password_never_appears_in_errors_or_logs(
    workspace: Workspace,
    make_runner: RunnerFactory,
    pg_server: postgres.PostgresServer,
    pg_dsn: str,
    pgbouncer: Callable[[str], PgBouncer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = pg_server.password
    messages: list[str] = []

    def collect(action: Callable[[], object]) -> None:
        try:
            action()
        except (MigrationError, LockError) as exc:
            messages.append(str(exc))
        else:
            raise AssertionError("expected a MigrationError")

    def enter(**kwargs: Any) -> Callable[[], object]:
        def run() -> object:
            with make_runner(**kwargs):
                return None

        return run

    keyword_dsn = f"host=127.0.0.1 port={pg_server.port} user={pg_server.user} password={canary} dbname=no_such_db"
    collect(enter(dsn=pg_dsn.rsplit("/", 1)[0] + "/no_such_db"))
    collect(enter(dsn=keyword_dsn))
    collect(enter(dsn=pgbouncer("transaction").dsn(pg_server, pg_dsn.rsplit("/", 1)[1])))
    workspace.write("V1__bad.sql", f"SELECT '{canary}'::int;")
    workspace.write("U1__bad.sql", "SELECT 1;")
    with make_runner(deployment_id="dep-holder"):
        collect(enter(lock_wait_seconds=0))

        def apply_bad() -> object:
            with make_runner(lock_wait_seconds=5) as runner:
                return runner.apply(runner.plan(workspace.scripts(), approved=None))

    collect(apply_bad)
    assert len(messages) == 5
    assert "postgresql://orchestrator@127.0.0.1:" in messages[0] and "/no_such_db" in messages[0]
    assert f"postgresql://orchestrator@127.0.0.1:{pg_server.port}/no_such_db" in messages[1]
    for message in messages:
        assert canary not in message, message
    assert canary not in caplog.text
