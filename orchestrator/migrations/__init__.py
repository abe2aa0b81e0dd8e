"""Migrations: Flyway-style versioned SQL with undo scripts, approved-only, on PostgreSQL.

`scripts` finds and checksums the files (no database), `lint` asks squawk about them, `plan`
decides what runs and what refuses the run (pure data), `runner` does it under one advisory lock.
"""

from orchestrator.migrations.history import HistoryRow
from orchestrator.migrations.lint import REFUSING_RULES, LintFinding, LintReport
from orchestrator.migrations.plan import MigrationPlan, PendingMigration
from orchestrator.migrations.runner import MigrationRunner
from orchestrator.migrations.scripts import MigrationScript, discover

__all__ = [
    "REFUSING_RULES",
    "HistoryRow",
    "LintFinding",
    "LintReport",
    "MigrationPlan",
    "MigrationRunner",
    "MigrationScript",
    "PendingMigration",
    "discover",
]
