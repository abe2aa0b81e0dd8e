"""Linting pending migrations with the real squawk binary, and the refusals it drives."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.contract import MigrationsConfig
from orchestrator.errors import MigrationError
from orchestrator.migrations.lint import lint
from tests.migrations.conftest import RunnerFactory, Workspace

Sql = Callable[..., list[tuple[Any, ...]]]


def test_breaking_change_is_refused_until_acknowledged_and_stays_in_the_plan(
    workspace: Workspace, make_runner: RunnerFactory, sql: Sql
) -> None:
    workspace.write("V1__orders.sql", "CREATE TABLE orders (id bigint, legacy text);")
    workspace.write("U1__orders.sql", "DROP TABLE orders;")
    with make_runner() as runner:
        runner.apply(runner.plan(workspace.scripts(), approved=None))
    workspace.write("V2__drop_legacy.sql", "ALTER TABLE orders DROP COLUMN legacy;")
    workspace.write("U2__drop_legacy.sql", "ALTER TABLE orders ADD COLUMN legacy text;")
    with make_runner() as runner, pytest.raises(MigrationError) as caught:
        runner.plan(workspace.scripts(), approved=None)
    message = str(caught.value)
    assert "V2__drop_legacy.sql:1: squawk ban-drop-column: Dropping a column may break existing clients." in message
    assert "migrations.lint.acknowledge: {V2__drop_legacy.sql: [ban-drop-column]}" in message
    assert [r[0] for r in sql("SELECT column_name FROM information_schema.columns WHERE table_name = 'orders'")] == [
        "id",
        "legacy",
    ]
    acknowledged = (("V2__drop_legacy.sql", frozenset({"ban-drop-column"})),)
    with make_runner(lint_acknowledge=acknowledged) as runner:
        plan = runner.plan(workspace.scripts(), approved=None)
        runner.apply(plan)
    finding = next(f for f in plan.lint.findings if f.rule == "ban-drop-column")
    assert finding.acknowledged and not finding.refuses
    assert any("V2__drop_legacy.sql:1 ban-drop-column [acknowledged]" in line for line in plan.describe())
    assert [r[0] for r in sql("SELECT column_name FROM information_schema.columns WHERE table_name = 'orders'")] == [
        "id"
    ]


def test_rules_that_break_the_old_release_or_block_traffic_refuse_others_advise(workspace: Workspace) -> None:
    workspace.write(
        "V1__changes.sql",
        "ALTER TABLE orders ADD COLUMN owner bigint NOT NULL;\n"
        "CREATE INDEX orders_owner ON orders (owner);\n"
        "ALTER TABLE orders ALTER COLUMN note TYPE varchar(10);\n"
        "ALTER TABLE orders RENAME COLUMN a TO b;\n",
    )
    workspace.write("U1__changes.sql", "DROP TABLE orders;")
    workspace.write("V2__new_table.sql", "CREATE TABLE fresh (id int);\nCREATE INDEX fresh_id ON fresh (id);\n")
    workspace.write("U2__new_table.sql", "DROP TABLE fresh;")
    report = lint(workspace.scripts(), MigrationsConfig(), pg_version="15.0")
    refusing = sorted({(f.filename, f.rule) for f in report.findings if f.refuses})
    assert refusing == [
        ("V1__changes.sql", "adding-required-field"),
        ("V1__changes.sql", "changing-column-type"),
        ("V1__changes.sql", "renaming-column"),
        ("V1__changes.sql", "require-concurrent-index-creation"),
    ]
    # An index on a table created in the same transaction blocks nobody; int is only advice.
    fresh = [f for f in report.findings if f.filename == "V2__new_table.sql"]
    assert fresh and not any(f.refuses for f in fresh)
    assert "prefer-bigint-over-int" in {f.rule for f in fresh}
    # Undo scripts run only on rollback: they are not linted.
    assert not any(f.filename.startswith("U") for f in report.findings)
    lines = [f for f in report.findings if f.rule == "renaming-column"]
    assert [f.line for f in lines] == [4]


def test_advice_the_runner_already_follows_is_not_reported(workspace: Workspace) -> None:
    workspace.write("V1__column.sql", "ALTER TABLE orders ADD COLUMN note text;\n")
    workspace.write("U1__column.sql", "ALTER TABLE orders DROP COLUMN note;")
    report = lint(workspace.scripts(), MigrationsConfig(), pg_version="15.0")
    rules = {f.rule for f in report.findings}
    # Every migration runs under SET LOCAL lock_timeout; statement_timeout is not set, so that advice stays.
    assert "require-lock-timeout" not in rules
    assert "require-statement-timeout" in rules


def test_no_transaction_scripts_are_linted_as_run_outside_a_transaction(workspace: Workspace) -> None:
    workspace.write(
        "V1__index.sql", "-- deploy-orchestrator: no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);"
    )
    report = lint(workspace.scripts(), MigrationsConfig(), pg_version=None)
    assert not any(f.refuses for f in report.findings), report.findings


def test_lint_can_be_turned_off(workspace: Workspace) -> None:
    workspace.write("V1__drop.sql", "ALTER TABLE orders DROP COLUMN legacy;")
    report = lint(workspace.scripts(), MigrationsConfig(lint_enabled=False), pg_version=None)
    assert report.findings == () and not report.enabled


def test_missing_squawk_says_how_to_install_it(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace.write("V1__drop.sql", "ALTER TABLE orders DROP COLUMN legacy;")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with pytest.raises(MigrationError, match=r"squawk is not installed: `pip install squawk-cli`"):
        lint(workspace.scripts(), MigrationsConfig(), pg_version=None)


def test_squawk_ignore_comments_in_a_migration_are_refused(workspace: Workspace, make_runner: RunnerFactory) -> None:
    workspace.write("V1__drop.sql", "-- squawk-ignore-file\nALTER TABLE t DROP COLUMN c;\n")
    workspace.write("U1__drop.sql", "ALTER TABLE t ADD COLUMN c int;\n")
    with make_runner() as runner, pytest.raises(MigrationError, match="squawk-ignore comments are not honoured"):
        runner.plan(workspace.scripts(), None)
