"""The migration plan: pure data computed from the files, the history and the config.

`build_plan` decides everything a run will do and everything that refuses it (checksum drift,
out-of-order versions, unapproved files, missing undo scripts, refusing lint findings) without
touching a database, so plan mode, the step summary and the runner all see the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath

from orchestrator.contract import MigrationsConfig
from orchestrator.migrations.history import HistoryRow
from orchestrator.migrations.lint import LintReport
from orchestrator.migrations.scripts import MigrationScript, version_key

__all__ = ["MigrationPlan", "PendingMigration", "applied_rows", "build_plan", "pending_scripts"]


@dataclass(frozen=True, slots=True)
class PendingMigration:
    script: MigrationScript
    undo: MigrationScript | None
    irreversible: bool

    @property
    def version(self) -> str:
        return self.script.version

    @property
    def filename(self) -> str:
        return self.script.filename


@dataclass(frozen=True, slots=True)
class MigrationPlan:
    """What a run will apply, in order, and why it may not. Empty `refusals` means it may run."""

    history_table: str
    pending: tuple[PendingMigration, ...]
    applied: tuple[HistoryRow, ...]
    lint: LintReport
    approval_checked: bool
    refusals: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def is_empty(self) -> bool:
        return not self.pending

    @property
    def is_refused(self) -> bool:
        return bool(self.refusals)

    def describe(self) -> list[str]:
        """Readable lines for plan mode and the step summary (no secrets, no SQL bodies)."""
        lines = [f"Migrations ({self.history_table}): {len(self.pending)} pending, {len(self.applied)} applied"]
        for number, item in enumerate(self.pending, start=1):
            script = item.script
            if item.undo is not None:
                undo = f"undo {item.undo.filename}"
            elif item.irreversible:
                undo = "no undo: irreversible, a rollback leaves it in place"
            else:
                undo = "no undo script"
            flags = "" if script.transactional else ", outside a transaction"
            lines.append(
                f"  {number}. {script.version} {script.filename} (sha256 {script.checksum[:12]}{flags}; {undo})"
            )
        if not self.approval_checked:
            lines.append("  approval: no compliance verdict source configured; files not checked against one")
        if self.lint.enabled:
            count = len(self.lint.findings)
            lines.append(f"Lint (squawk, {self.lint.duration_ms:.0f} ms): {count} finding{'s' if count != 1 else ''}")
            lines.extend(f"  - {finding.describe()}" for finding in self.lint.findings)
        else:
            lines.append("Lint: disabled (migrations.lint.enabled: false)")
        lines.extend(f"Note: {note}" for note in self.notes)
        if self.refusals:
            lines.append(f"Refused ({len(self.refusals)}):")
            lines.extend(f"  - {reason}" for reason in self.refusals)
        return lines


def applied_rows(history: Sequence[HistoryRow]) -> dict[tuple[int, ...], HistoryRow]:
    """The row that currently holds each applied version (latest successful, not undone)."""
    current: dict[tuple[int, ...], HistoryRow] = {}
    for row in history:
        if row.type != "SQL" or row.version is None:
            continue
        key = version_key(row.version)
        if row.is_applied:
            current[key] = row
        else:
            current.pop(key, None)
    return current


def pending_scripts(scripts: Sequence[MigrationScript], history: Sequence[HistoryRow]) -> list[MigrationScript]:
    """Versioned scripts whose version is not applied, in version order."""
    applied = applied_rows(history)
    return sorted((s for s in scripts if s.kind == "versioned" and s.key not in applied), key=lambda s: s.key)


def build_plan(
    scripts: Sequence[MigrationScript],
    history: Sequence[HistoryRow],
    config: MigrationsConfig,
    approved: Mapping[str, str] | None,
    lint: LintReport,
    *,
    history_table: str,
) -> MigrationPlan:
    applied = applied_rows(history)
    versioned = {s.key: s for s in scripts if s.kind == "versioned"}
    undos = {s.key: s for s in scripts if s.kind == "undo"}
    refusals: list[str] = []
    notes: list[str] = []
    by_name = _by_name(approved) if approved is not None else None

    for key, row in sorted(applied.items()):
        script = versioned.get(key)
        if script is None:
            notes.append(f"version {row.version} ({row.script}) is applied but not among the listed migration files")
        elif script.checksum != row.checksum:
            refusals.append(_drift(script, row))

    pending = pending_scripts(scripts, history)
    # A version applied before and undone by a rollback was in order when it first ran; re-applying
    # it below an irreversible migration the rollback left in place is not the stale-branch case
    # out-of-order protection is for.
    undone = {version_key(r.version) for r in history if r.type == "SQL" and r.version and r.undone_at}
    for script in pending:
        if script.key in undone:
            notes.append(f"{script.filename} was undone by an earlier rollback and will be applied again")
    highest = max(applied, default=None)
    if highest is not None and not config.out_of_order:
        top = applied[highest]
        for script in pending:
            if script.key < highest and script.key not in undone:
                refusals.append(
                    f"{script.filename}: version {script.version} is lower than the highest applied version "
                    f"{top.version} ({top.script}), so it would run out of order. Give it a version above "
                    f"{top.version}, or set migrations.out_of_order: true if its order does not matter."
                )

    items: list[PendingMigration] = []
    for script in pending:
        undo = undos.get(script.key)
        irreversible = undo is None and script.filename in config.irreversible
        if undo is None and not irreversible:
            refusals.append(
                f"{script.filename}: no undo script (U{script.version.replace('.', '_')}__<description>.sql), so a "
                "rollback could not undo it. Add one, or list the file in migrations.irreversible to accept that "
                "a rollback leaves it in place."
            )
        if by_name is not None:
            for candidate in (script, undo):
                problem = _approval(candidate, by_name) if candidate is not None else None
                if problem:
                    refusals.append(problem)
        items.append(PendingMigration(script=script, undo=undo, irreversible=irreversible))

    for finding in lint.findings:
        if finding.refuses:
            refusals.append(
                f"{finding.filename}:{finding.line}: squawk {finding.rule}: {finding.message} This would break the "
                "release still serving or block its traffic. Make the change backward compatible (expand now, "
                "contract in a later release), or accept it with migrations.lint.acknowledge: "
                f"{{{finding.filename}: [{finding.rule}]}}."
            )

    return MigrationPlan(
        history_table=history_table,
        pending=tuple(items),
        applied=tuple(applied[k] for k in sorted(applied)),
        lint=lint,
        approval_checked=approved is not None,
        refusals=tuple(refusals),
        notes=tuple(notes),
    )


def _drift(script: MigrationScript, row: HistoryRow) -> str:
    return (
        f"{script.filename}: applied on {row.installed_on:%Y-%m-%d %H:%M:%S %Z} with checksum {row.checksum}, but "
        f"the file now has checksum {script.checksum}. An applied migration must not change: restore the file "
        "to its applied content, and put the new change in a new migration with a higher version."
    )


def _approval(script: MigrationScript, approved: Mapping[str, str]) -> str | None:
    expected = approved.get(script.filename)
    if expected is None:
        return (
            f"{script.filename}: not approved: the compliance verdict has no checksum for it (file checksum "
            f"{script.checksum}). Only approved migrations run: validate this file, then deploy again."
        )
    if expected.lower() != script.checksum:
        return (
            f"{script.filename}: checksum {script.checksum} does not match the approved checksum {expected}: "
            "the file changed after validation. Restore the approved content, or validate this content."
        )
    return None


def _by_name(approved: Mapping[str, str]) -> dict[str, str]:
    """Verdicts may key files by name or by workspace-relative path; either identifies the file (a name
    given as itself wins over the same name inside a path)."""
    found: dict[str, str] = {}
    for key, checksum in approved.items():
        found.setdefault(PurePath(key).name, checksum)
    found.update({key: checksum for key, checksum in approved.items() if "/" not in key})
    return found
