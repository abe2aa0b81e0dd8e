"""What a run killed inside a no-transaction migration leaves behind, and how it is cleaned up.

A no-transaction script (`-- deploy-orchestrator: no-transaction`) runs statement by statement and
gets its history row only at the end. Killed in between, it leaves changes without a row, and the
next deploy runs it again into "relation ... already exists". For the statement such scripts exist
for, `CREATE INDEX CONCURRENTLY`, the database says exactly what is left:

- an INVALID index (the build was interrupted): dropped with `DROP INDEX CONCURRENTLY`, so the next
  apply builds it again from scratch;
- a complete (valid) index: when every statement of the script is such an index build and every one
  is complete, the script did all it does, and its history row is written now (for the crashed
  deployment, so the recovery can undo it with that run's other migrations); otherwise what else
  it did cannot be told, and recovery refuses with the exact statements that clear the way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.migrations.scripts import MigrationScript
from orchestrator.migrations.statements import split_statements

__all__ = ["Leftovers", "clean_up", "index_builds"]

_LEADING_COMMENTS = re.compile(r"^(?:\s*--[^\n]*\n|\s*/\*.*?\*/)*", re.DOTALL)
_CREATE_INDEX_CONCURRENTLY = re.compile(
    r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"((?:\"[^\"]+\"|[A-Za-z_][A-Za-z0-9_$]*)(?:\s*\.\s*(?:\"[^\"]+\"|[A-Za-z_][A-Za-z0-9_$]*))?)\s+ON\s",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Leftovers:
    actions: tuple[str, ...] = ()
    """What was done, one readable line each."""
    recorded: tuple[MigrationScript, ...] = ()
    """Scripts found complete and recorded in the history."""
    refusal: str | None = None
    """Why the rest must be done by hand, with the exact statements; None when nothing is left."""


def index_builds(script: MigrationScript) -> tuple[list[str], bool]:
    """The index names the script builds concurrently, and whether that is all it does."""
    names: list[str] = []
    only = True
    for statement in split_statements(script.sql):
        match = _CREATE_INDEX_CONCURRENTLY.match(_LEADING_COMMENTS.sub("", statement))
        if match:
            names.append(match.group(1).replace(" ", ""))
        else:
            only = False
    return names, only


def clean_up(
    cur: Any,
    pending: Sequence[MigrationScript],
    *,
    record: Callable[[Any, MigrationScript], None],
) -> Leftovers:
    """Clean what killed runs of the `pending` no-transaction scripts left (see the module docstring).
    `cur` is an autocommit cursor holding the migration lock; `record(cur, script)` writes a history row."""
    actions: list[str] = []
    recorded: list[MigrationScript] = []
    refusals: list[str] = []
    for script in pending:
        if script.transactional:
            continue
        names, only_indexes = index_builds(script)
        states = {name: _index_state(cur, name) for name in names}
        for name, state in states.items():
            if state == "invalid":
                cur.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                actions.append(
                    f"dropped the invalid index {name} a killed CREATE INDEX CONCURRENTLY of {script.filename} "
                    "left; the next apply builds it again"
                )
                states[name] = "missing"
        complete = [n for n, s in states.items() if s == "valid"]
        if not complete:
            continue
        if only_indexes and len(complete) == len(names):
            cur.execute("BEGIN")
            try:
                record(cur, script)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            recorded.append(script)
            actions.append(
                f"recorded {script.filename} in the history: every index it builds ({', '.join(complete)}) is "
                "complete, its run was killed before it could say so"
            )
            continue
        statements = " ".join(f"DROP INDEX CONCURRENTLY IF EXISTS {n};" for n in complete)
        refusals.append(
            f"{script.filename} ran partly before its run was killed: index {', '.join(complete)} is complete but "
            f"the script has no history row, and it does more than build indexes, so what else took effect "
            f"cannot be told. Undo what it did by hand, starting with `{statements}`, then deploy again"
        )
    return Leftovers(tuple(actions), tuple(recorded), "; ".join(refusals) or None)


def _index_state(cur: Any, name: str) -> str:
    cur.execute(
        "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)",
        (name,),
    )
    row = cur.fetchone()
    if row is None:
        return "missing"
    return "valid" if row[0] else "invalid"
