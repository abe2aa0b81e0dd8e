"""The ledger: one `deployment_log` row per run and one `pipeline_lineage` row per deploy.

A run writes its row at the start (`status = 'in_progress'`) and completes it at the end, so a
run that crashed in between stays visible. A deploy refused by a gate is recorded too
(`status = 'failed'` with `refused_reason`). Tables are created on first use from
`schema/ledger.sql` (idempotent DDL) in the `public` schema or a configured one (Supabase keeps
application tables in `public`; a dedicated schema keeps the orchestrator's apart).

- `database`: connecting (DSN masked in every error), the schema name, the idempotent DDL;
  shared with the outbox, recovery and the good-release judgement, which keep tables there too.
- `lineage`: the `pipeline_lineage` link of a deploy, read off its result.
- `finished_row`: the `deployment_log` row of a finished run, read off its result, redacted.
- `recorder`: `Ledger`, the run's never-raising handle on both tables, and `open_ledger`.
"""

from orchestrator.ledger.database import LedgerError, check_schema_name, connect, ensure_tables
from orchestrator.ledger.lineage import LineageLink
from orchestrator.ledger.recorder import Ledger, open_ledger

__all__ = ["Ledger", "LedgerError", "LineageLink", "check_schema_name", "connect", "ensure_tables", "open_ledger"]
