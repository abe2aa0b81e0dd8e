"""The runner against a real PostgreSQL: plan, apply, refuse, undo, history."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.errors import MigrationError
from tests.migrations.conftest import RunnerFactory, Workspace

Sql = Callable[..., list[tuple[Any, ...]]]


def _tables(sql: Sql) -> list[str]:
    return [r[0] for r in sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]


def _two_migrations(workspace: Workspace) -> None:
    workspace.write("V1__create_orders.sql", "CREATE TABLE orders (id bigint PRIMARY KEY);")
    workspace.write("U1__create_orders.sql", "DROP TABLE orders;")
    workspace.write("V1_10__create_items.sql", "CREATE TABLE items (id bigint PRIMARY KEY);")
    workspace.write("U1_10__create_items.sql", "DROP TABLE items;")


def test_apply_runs_pending_migrations_in_order_and_records_history(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql
) -> None:
    _two_migrations(workspace)
    workspace.write("V1_9__create_users.sql", "CREATE TABLE users (id bigint PRIMARY KEY);")
    workspace.write("U1_9__create_users.sql", "DROP TABLE users;")
    scripts = workspace.scripts()
    with make_runner() as runner:
        plan = runner.plan(scripts, approved=None)
        assert [p.filename for p in plan.pending] == [
            "V1__create_orders.sql",
            "V1_9__create_users.sql",
            "V1_10__create_items.sql",
        ]
        results = runner.apply(plan)
        rows = runner.history()
    assert [(r.version, r.filename, r.success, r.direction) for r in results] == [
        ("1", "V1__create_orders.sql", True, "up"),
        ("1.9", "V1_9__create_users.sql", True, "up"),
        ("1.10", "V1_10__create_items.sql", True, "up"),
    ]
    assert _tables(sql) == ["items", "orders", "users"]
    by_name = {s.filename: s for s in scripts}
    assert [(r.version, r.type, r.script, r.checksum, r.installed_by, r.deployment_id, r.undone_at) for r in rows] == [
        (v, "SQL", f, by_name[f].checksum, "tester", "dep-1", None)
        for v, f in (
            ("1", "V1__create_orders.sql"),
            ("1.9", "V1_9__create_users.sql"),
            ("1.10", "V1_10__create_items.sql"),
        )
    ]
    assert all(r.success for r in rows)
    assert [r.installed_rank for r in rows] == sorted(r.installed_rank for r in rows)


def test_a_second_run_has_nothing_to_do(workspace: Workspace, make_runner: RunnerFactory) -> None:
    _two_migrations(workspace)
    with make_runner() as runner:
        runner.apply(runner.plan(workspace.scripts(), approved=None))
    with make_runner(deployment_id="dep-2") as runner:
        plan = runner.plan(workspace.scripts(), approved=None)
        assert plan.is_empty
        assert runner.apply(plan) == []
        assert plan.describe()[0] == "Migrations (deploy_orchestrator.schema_history): 0 pending, 2 applied"


def test_changed_applied_migration_is_refused_naming_file_and_both_checksums(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql
) -> None:
    _two_migrations(workspace)
    with make_runner() as runner:
        runner.apply(runner.plan(workspace.scripts(), approved=None))
    old = hashlib.sha256(b"CREATE TABLE orders (id bigint PRIMARY KEY);").hexdigest()
    workspace.write("V1__create_orders.sql", "CREATE TABLE orders (id bigint PRIMARY KEY, note text);")
    workspace.write("V2__create_audit.sql", "CREATE TABLE audit (id bigint);")
    workspace.write("U2__create_audit.sql", "DROP TABLE audit;")
    new = hashlib.sha256(b"CREATE TABLE orders (id bigint PRIMARY KEY, note text);").hexdigest()
    with make_runner(deployment_id="dep-2") as runner, pytest.raises(MigrationError) as caught:
        runner.plan(workspace.scripts(), approved=None)
    message = str(caught.value)
    assert "V1__create_orders.sql: applied on" in message
    assert f"with checksum {old}, but the file now has checksum {new}" in message
    assert "restore the file to its applied content" in message
    assert "audit" not in _tables(sql)  # refused before anything was touched


def test_failing_migration_leaves_nothing_half_applied(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql
) -> None:
    workspace.write("V1__create_orders.sql", "CREATE TABLE orders (id bigint PRIMARY KEY);")
    workspace.write("U1__create_orders.sql", "DROP TABLE orders;")
    workspace.write(
        "V2__broken.sql",
        "CREATE TABLE half (id bigint);\nINSERT INTO half SELECT 1 / 0;\nCREATE TABLE never (id bigint);",
    )
    workspace.write("U2__broken.sql", "DROP TABLE half; DROP TABLE never;")
    workspace.write("V3__later.sql", "CREATE TABLE later (id bigint);")
    workspace.write("U3__later.sql", "DROP TABLE later;")
    with make_runner() as runner:
        plan = runner.plan(workspace.scripts(), approved=None)
        with pytest.raises(MigrationError) as caught:
            runner.apply(plan)
        history = runner.history()
    error: Any = caught.value
    assert [(r.filename, r.success) for r in error.results] == [
        ("V1__create_orders.sql", True),
        ("V2__broken.sql", False),
    ]
    assert error.results[-1].error == str(error)
    assert error.migration == "V2__broken.sql"
    assert "apply of V2__broken.sql failed: division by zero (SQLSTATE 22012)" in str(error)
    assert "nothing of it was recorded" in str(error)
    assert runner.last_results == list(error.results)
    assert _tables(sql) == ["orders"]
    assert [r.script for r in history] == ["V1__create_orders.sql"]


def test_out_of_order_version_is_refused_unless_allowed(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql
) -> None:
    workspace.write("V2__b.sql", "CREATE TABLE b (id bigint);")
    workspace.write("U2__b.sql", "DROP TABLE b;")
    with make_runner() as runner:
        runner.apply(runner.plan(workspace.scripts(), approved=None))
    workspace.write("V1_5__a.sql", "CREATE TABLE a (id bigint);")
    workspace.write("U1_5__a.sql", "DROP TABLE a;")
    with make_runner() as runner, pytest.raises(MigrationError, match=r"V1_5__a.sql: version 1.5 is lower than the"):
        runner.plan(workspace.scripts(), approved=None)
    with make_runner(out_of_order=True) as runner:
        runner.apply(runner.plan(workspace.scripts(), approved=None))
    assert _tables(sql) == ["a", "b"]


def test_only_approved_migrations_with_exactly_that_checksum_run(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql
) -> None:
    _two_migrations(workspace)
    scripts = workspace.scripts()
    approved = {s.filename: s.checksum for s in scripts}
    tampered = dict(approved, **{"V1_10__create_items.sql": "0" * 64})
    del tampered["U1__create_orders.sql"]
    with make_runner() as runner:
        with pytest.raises(MigrationError) as caught:
            runner.plan(scripts, approved=tampered)
        message = str(caught.value)
        items = next(s for s in scripts if s.filename == "V1_10__create_items.sql")
        undo = next(s for s in scripts if s.filename == "U1__create_orders.sql")
        assert (
            f"V1_10__create_items.sql: checksum {items.checksum} does not match the approved checksum {'0' * 64}"
            in (message)
        )
        assert (
            "U1__create_orders.sql: not approved: the compliance verdict has no checksum for it "
            f"(file checksum {undo.checksum})" in (message)
        )
        assert _tables(sql) == []
        # Verdicts may key files by workspace-relative path.
        by_path = {f"db/migrations/{name}": checksum for name, checksum in approved.items()}
        runner.apply(runner.plan(scripts, approved=by_path))
    assert _tables(sql) == ["items", "orders"]


def test_migration_without_undo_is_refused_unless_irreversible(
    workspace: Workspace, make_runner: RunnerFactory
) -> None:
    workspace.write("V1__seed.sql", "CREATE TABLE seed (id bigint);")
    with make_runner() as runner, pytest.raises(MigrationError) as caught:
        runner.plan(workspace.scripts(), approved=None)
    assert "V1__seed.sql: no undo script (U1__<description>.sql)" in str(caught.value)
    assert "migrations.irreversible" in str(caught.value)
    with make_runner(irreversible=frozenset({"V1__seed.sql"})) as runner:
        plan = runner.plan(workspace.scripts(), approved=None)
    assert (
        "1 V1__seed.sql" in plan.describe()[1] and "irreversible, a rollback leaves it in place" in plan.describe()[1]
    )


def test_undo_reverts_this_runs_migrations_newest_first_and_reports_irreversible(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql
) -> None:
    workspace.write("V1__base.sql", "CREATE TABLE base (id bigint PRIMARY KEY);")
    workspace.write("U1__base.sql", "DROP TABLE base;")
    with make_runner(deployment_id="dep-0") as runner:
        runner.apply(runner.plan(workspace.scripts(), approved=None))
    workspace.write("V2__child.sql", "CREATE TABLE child (id bigint PRIMARY KEY REFERENCES base (id));")
    workspace.write("U2__child.sql", "DROP TABLE child;")
    workspace.write("V3__backfill.sql", "INSERT INTO base VALUES (1);")
    workspace.write("V4__grandchild.sql", "CREATE TABLE grandchild (id bigint REFERENCES child (id));")
    workspace.write("U4__grandchild.sql", "DROP TABLE grandchild;")
    with make_runner(irreversible=frozenset({"V3__backfill.sql"}), lint_enabled=False) as runner:
        applied = runner.apply(runner.plan(workspace.scripts(), approved=None))
        # Dropping child before grandchild would fail: newest first is required, whatever the list order.
        undone = runner.undo(list(reversed(applied)))
        history = runner.history()
    assert [(r.filename, r.direction, r.success, r.error) for r in undone] == [
        ("U4__grandchild.sql", "down", True, None),
        (
            "V3__backfill.sql",
            "down",
            True,
            "not undone: marked irreversible (migrations.irreversible); its changes remain in place",
        ),
        ("U2__child.sql", "down", True, None),
    ]
    assert _tables(sql) == ["base"]
    assert sql("SELECT id FROM base") == [(1,)]
    by_script = {r.script: r for r in history}
    assert by_script["V1__base.sql"].undone_at is None  # an earlier deploy's migration is not this run's
    assert by_script["V2__child.sql"].undone_at is not None
    assert by_script["V3__backfill.sql"].undone_at is None
    assert by_script["U4__grandchild.sql"].type == "UNDO_SQL"
    assert [r.script for r in history if r.type == "UNDO_SQL"] == ["U4__grandchild.sql", "U2__child.sql"]
    # Undone versions are pending again; a retried rollback finds nothing left to undo.
    with make_runner(irreversible=frozenset({"V3__backfill.sql"}), lint_enabled=False) as runner:
        plan = runner.plan(workspace.scripts(), approved=None)
        assert [p.filename for p in plan.pending] == ["V2__child.sql", "V4__grandchild.sql"]
        again = runner.undo([a for a in applied if a.filename != "V3__backfill.sql"])
    assert all(r.success and r.error == "not undone: it is not applied (already undone?)" for r in again)


def test_undo_in_a_later_run_finds_the_deployments_migrations(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql
) -> None:
    _two_migrations(workspace)
    with make_runner(deployment_id="dep-7") as runner:
        runner.apply(runner.plan(workspace.scripts(), approved=None))
    with make_runner(deployment_id="rollback-1") as runner:
        applied = runner.applied_by("dep-7")
        assert [a.filename for a in applied] == ["V1__create_orders.sql", "V1_10__create_items.sql"]
        undone = runner.undo(applied, scripts=workspace.scripts())
    assert [u.filename for u in undone] == ["U1_10__create_items.sql", "U1__create_orders.sql"]
    assert _tables(sql) == []


def test_failed_undo_raises_with_results_and_keeps_older_migrations(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql
) -> None:
    _two_migrations(workspace)
    workspace.write("U1__create_orders.sql", "DROP TABLE no_such_table;")
    with make_runner() as runner:
        applied = runner.apply(runner.plan(workspace.scripts(), approved=None))
        with pytest.raises(MigrationError) as caught:
            runner.undo(applied)
    error: Any = caught.value
    assert [(r.filename, r.success) for r in error.results] == [
        ("U1_10__create_items.sql", True),
        ("U1__create_orders.sql", False),
    ]
    assert 'undo of U1__create_orders.sql failed: table "no_such_table" does not exist' in str(error)
    assert _tables(sql) == ["orders"]


def test_plan_mode_reads_without_creating_or_locking(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql
) -> None:
    _two_migrations(workspace)
    with make_runner(read_only=True) as planner, make_runner(lock_wait_seconds=0) as runner:
        plan = planner.plan(workspace.scripts(), approved=None)
        assert len(plan.pending) == 2
        assert sql("SELECT to_regclass('deploy_orchestrator.schema_history') IS NOT NULL") == [(True,)]
        with pytest.raises(MigrationError, match="read-only for plan mode"):
            planner.apply(plan)
        runner.apply(runner.plan(workspace.scripts(), approved=None))
    assert _tables(sql) == ["items", "orders"]


def test_plan_mode_on_a_fresh_database_creates_nothing(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql
) -> None:
    _two_migrations(workspace)
    with make_runner(read_only=True) as planner:
        plan = planner.plan(workspace.scripts(), approved=None)
    assert len(plan.pending) == 2
    assert sql("SELECT count(*) FROM pg_namespace WHERE nspname = 'deploy_orchestrator'") == [(0,)]


def test_the_script_travels_with_its_opening_and_runs_exactly_as_written(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql
) -> None:
    # The script is sent in the same round trip as BEGIN and lock_timeout, without parameters: a `%`,
    # a `%s` and a comment on the last line all behave as written, inside the runner's transaction.
    workspace.write(
        "V1__rates.sql",
        "CREATE TABLE rates (label text, ratio text, timeout text);\n"
        "INSERT INTO rates VALUES ('100%', '%s', current_setting('lock_timeout')), ('%(x)s', 'a%%b', '');\n"
        "-- the last line is a comment",
    )
    workspace.write("U1__rates.sql", "DROP TABLE rates;")
    with make_runner() as runner:
        applied = runner.apply(runner.plan(workspace.scripts(), approved=None))
        [row] = runner.history()
    assert [r.filename for r in applied if r.success] == ["V1__rates.sql"] and row.success
    assert sql("SELECT label, ratio, timeout FROM rates ORDER BY 1") == [("%(x)s", "a%%b", ""), ("100%", "%s", "5s")]
