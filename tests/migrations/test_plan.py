"""The plan as pure data: built from files, history rows and config, no database."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.contract import MigrationsConfig
from orchestrator.migrations.history import HistoryRow
from orchestrator.migrations.lint import LintReport
from orchestrator.migrations.plan import build_plan
from tests.migrations.conftest import Workspace

NO_LINT = LintReport(findings=(), duration_ms=0.0, enabled=False)
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _row(rank: int, version: str, script: str, checksum: str, *, undone: bool = False, kind: str = "SQL") -> HistoryRow:
    return HistoryRow(
        rank, version, "d", kind, script, checksum, "ci", WHEN, 3, True, "dep-0", WHEN if undone else None
    )


def test_describe_lists_pending_in_order_with_undo_and_transaction_mode(workspace: Workspace) -> None:
    workspace.write("V1__a.sql", "SELECT 1;")
    workspace.write("U1__a.sql", "SELECT 1;")
    workspace.write("V2__b.sql", "-- deploy-orchestrator: no-transaction\nSELECT 1;")
    scripts = workspace.scripts()
    plan = build_plan(
        scripts,
        [],
        MigrationsConfig(irreversible=frozenset({"V2__b.sql"})),
        None,
        NO_LINT,
        history_table="deploy_orchestrator.schema_history",
    )
    v1, _, v2 = scripts
    assert plan.describe() == [
        "Migrations (deploy_orchestrator.schema_history): 2 pending, 0 applied",
        f"  1. 1 V1__a.sql (sha256 {v1.checksum[:12]}; undo U1__a.sql)",
        f"  2. 2 V2__b.sql (sha256 {v2.checksum[:12]}, outside a transaction; "
        "no undo: irreversible, a rollback leaves it in place)",
        "  approval: no compliance verdict source configured; files not checked against one",
        "Lint: disabled (migrations.lint.enabled: false)",
    ]
    assert not plan.is_refused


def test_every_refusal_is_collected_in_one_plan(workspace: Workspace) -> None:
    workspace.write("V1__a.sql", "SELECT 1; -- edited")
    workspace.write("U1__a.sql", "SELECT 1;")
    workspace.write("V2__b.sql", "SELECT 2;")
    workspace.write("V3__c.sql", "SELECT 3;")
    workspace.write("U3__c.sql", "SELECT 3;")
    scripts = workspace.scripts()
    history = [_row(1, "1", "V1__a.sql", "a" * 64), _row(2, "5", "V5__gone.sql", "b" * 64)]
    approved = {s.filename: s.checksum for s in scripts if s.filename != "V3__c.sql"}
    plan = build_plan(scripts, history, MigrationsConfig(), approved, NO_LINT, history_table="h")
    text = "\n".join(plan.refusals)
    assert len(plan.refusals) == 5, text
    assert "V1__a.sql: applied on 2026-01-02 03:04:05 UTC with checksum " + "a" * 64 in text
    assert "V2__b.sql: version 2 is lower than the highest applied version 5 (V5__gone.sql)" in text
    assert "V3__c.sql: version 3 is lower than the highest applied version 5" in text
    assert "V2__b.sql: no undo script (U2__<description>.sql)" in text
    assert "V3__c.sql: not approved: the compliance verdict has no checksum for it" in text
    assert plan.notes == ("version 5 (V5__gone.sql) is applied but not among the listed migration files",)


def test_an_undone_version_is_pending_again_and_not_out_of_order(workspace: Workspace) -> None:
    workspace.write("V1__a.sql", "SELECT 1;")
    workspace.write("U1__a.sql", "SELECT 1;")
    workspace.write("V2__b.sql", "SELECT 2;")
    scripts = workspace.scripts()
    v1 = scripts[0]
    history = [
        _row(1, "1", "V1__a.sql", v1.checksum, undone=True),
        _row(2, "2", "V2__b.sql", scripts[2].checksum),
        _row(3, "1", "U1__a.sql", scripts[1].checksum, kind="UNDO_SQL"),
    ]
    plan = build_plan(
        scripts, history, MigrationsConfig(irreversible=frozenset({"V2__b.sql"})), None, NO_LINT, history_table="h"
    )
    assert [p.filename for p in plan.pending] == ["V1__a.sql"]
    assert plan.refusals == ()
    assert plan.notes == ("V1__a.sql was undone by an earlier rollback and will be applied again",)
