"""Migration files: find them, check their names, order them, checksum them. No database here.

Naming follows Flyway: `V<version>__<description>.sql` applies a change, `U<version>__<description>.sql`
undoes it. Version parts are separated by `.` or `_` and compared as numbers, so `V1_10` (1.10)
comes after `V1_9` (1.9), and trailing zero parts do not make a new version (`1.0` == `1`).

A file whose leading comment lines contain `-- deploy-orchestrator: no-transaction` runs outside a
transaction (needed for `CREATE INDEX CONCURRENTLY`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from orchestrator.errors import ConfigError
from orchestrator.safe_files import DirectoryResolver, read_regular, resolve_safely, sql_files_below

__all__ = [
    "MAX_MIGRATION_BYTES",
    "NO_TRANSACTION_MARKER",
    "MigrationScript",
    "discover",
    "first_unvalidated",
    "parse_name",
    "parse_version",
    "undo_scripts_for",
    "version_key",
]

NO_TRANSACTION_MARKER = "deploy-orchestrator: no-transaction"
MAX_MIGRATION_BYTES = 64 << 20
"""A migration is SQL a person reviewed; past this it is a data dump, refused before it is read."""

_NAME = re.compile(r"^(?P<kind>[VU])(?P<version>\d+(?:[._]\d+)*)__(?P<description>[^/\\]+)\.sql$")
_HEADER = re.compile(r"^\s*--\s*deploy-orchestrator\s*:\s*no-transaction\s*$", re.IGNORECASE)
_NAME_RULE = "V<version>__<description>.sql or U<version>__<description>.sql (e.g. V1_2__add_orders.sql)"

Kind = Literal["versioned", "undo"]


@dataclass(frozen=True, slots=True)
class MigrationScript:
    """One migration file as read from disk; `sql` holds exactly the bytes the checksum covers."""

    kind: Kind
    version: str
    description: str
    filename: str
    path: Path
    checksum: str
    sql: str
    transactional: bool
    key: tuple[int, ...] = field(init=False, repr=False, compare=False)
    """`version_key(version)`, computed once: plans sort and index thousands of scripts by it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", version_key(self.version))


def parse_version(text: str) -> tuple[int, ...]:
    """`"1_10"` or `"1.10"` -> `(1, 10)`. Raises ValueError on anything else."""
    if text.isdigit():
        return (int(text),)  # most versions: one number, no split needed
    parts = re.split(r"[._]", text)
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(p) for p in parts)


def parse_name(filename: str) -> tuple[Kind, str] | None:
    """(kind, version as `1.10`) of a migration file name, or None when the name breaks the naming rule."""
    match = _NAME.match(filename)
    if match is None:
        return None
    kind: Kind = "versioned" if match["kind"] == "V" else "undo"
    return kind, ".".join(str(p) for p in parse_version(match["version"]))


def version_key(text: str) -> tuple[int, ...]:
    """The comparison key of a version: numeric parts with trailing zeros dropped (1.0 == 1)."""
    parts = list(parse_version(text))
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


class _Versioned(Protocol):
    @property
    def version(self) -> str: ...


_Applied = TypeVar("_Applied", bound=_Versioned)


def undo_scripts_for(
    applied: Iterable[_Applied], scripts: Sequence[MigrationScript]
) -> list[tuple[_Applied, MigrationScript]]:
    """Each applied migration that has an undo script among `scripts`, with that script."""
    undos = {s.key: s for s in scripts if s.kind == "undo"}
    return [(m, undo) for m in applied if (undo := undos.get(version_key(m.version)))]


def first_unvalidated(
    undos: Iterable[tuple[_Applied, MigrationScript]], validated: Mapping[str, str]
) -> tuple[_Applied, MigrationScript] | None:
    """The first undo script whose checksum is not the one `validated` (file name -> sha256) holds:
    running it would run SQL nobody validated with that deploy."""
    return next(((m, undo) for m, undo in undos if validated.get(undo.filename) != undo.checksum), None)


def discover(paths: Sequence[Path], workspace: Path) -> tuple[MigrationScript, ...]:
    """Every migration file under `paths` (files or directories, relative to `workspace`), in order.

    Directories are searched recursively for `*.sql`; every `.sql` file found must follow the naming
    rule. Versioned scripts come out by version, each undo script right after its versioned one.
    Raises ConfigError listing every problem: paths outside the workspace (symlinks resolved),
    missing paths, bad names, duplicate versions, undo scripts without a versioned script.
    """
    root = workspace.resolve()
    problems: list[str] = []
    files: list[tuple[str, Path, bool]] = []
    """(label, path, resolved already: a plain file listed below a resolved directory inside the workspace)"""
    for entry in paths:
        label = str(entry)
        candidate = entry if entry.is_absolute() else root / entry
        try:
            resolved = resolve_safely(candidate, field="artifacts.migrations", shown=label)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if not _is_inside(resolved, root):
            problems.append(f"artifacts.migrations: {label} resolves to {resolved}, outside the workspace {root}")
            continue
        if resolved.is_dir():
            for found in sql_files_below(resolved):
                files.append((f"{label}/{found.relative}", found.path, not found.is_link))
        elif resolved.is_file():
            files.append((label, resolved, False))
        else:
            problems.append(f"artifacts.migrations: {label} does not exist under the workspace {root}")

    scripts = _read_all(files, root, problems)
    scripts = _check_versions(scripts, problems)
    if problems:
        raise ConfigError(problems)
    return tuple(sorted(scripts, key=lambda s: (s.key, s.kind != "versioned")))


def _is_inside(path: Path, root: Path) -> bool:
    # By parts: `root in path.parents` builds every parent, seconds for thousands of files.
    return path.parts[: len(root.parts)] == root.parts


def _read_all(files: Iterable[tuple[str, Path, bool]], root: Path, problems: list[str]) -> list[MigrationScript]:
    seen: set[str] = set()
    scripts: list[MigrationScript] = []
    resolver = DirectoryResolver(field="artifacts.migrations")
    for label, raw, resolved in files:
        try:
            path = raw if resolved else resolver.resolve(raw, shown=label)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        text = str(path)  # a Path hashes through its parts: thousands of files
        if text in seen:
            continue  # listed both as a file and inside a listed directory: one file, not a duplicate
        seen.add(text)
        if not resolved and not _is_inside(path, root):
            problems.append(f"artifacts.migrations: {label} resolves to {path}, outside the workspace {root}")
            continue
        match = _NAME.match(raw.name)
        if match is None:
            hint = " (repeatable R__ migrations are not supported)" if raw.name.startswith("R__") else ""
            problems.append(f"artifacts.migrations: {label}: the name must be {_NAME_RULE}{hint}")
            continue
        try:
            data = read_regular(path, field="artifacts.migrations", shown=label, limit=MAX_MIGRATION_BYTES)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        try:
            sql = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            problems.append(f"artifacts.migrations: {label} is not valid UTF-8 ({exc.reason} at byte {exc.start})")
            continue
        scripts.append(
            MigrationScript(
                kind="versioned" if match["kind"] == "V" else "undo",
                version=".".join(str(p) for p in parse_version(match["version"])),
                description=match["description"].replace("_", " ").strip(),
                filename=raw.name,
                path=path,
                checksum=hashlib.sha256(data).hexdigest(),
                sql=sql,
                transactional=not _has_no_transaction_header(sql),
            )
        )
    return scripts


def _check_versions(scripts: list[MigrationScript], problems: list[str]) -> list[MigrationScript]:
    by_slot: dict[tuple[Kind, tuple[int, ...]], MigrationScript] = {}
    for script in scripts:
        slot = (script.kind, script.key)
        if slot in by_slot:
            kind = "versioned" if script.kind == "versioned" else "undo"
            first, second = sorted((by_slot[slot].filename, script.filename))
            problems.append(
                f"artifacts.migrations: {first} and {second} are both {kind} scripts for "
                f"version {script.version}; give one of them a new version"
            )
            continue
        by_slot[slot] = script
    for (kind, key), script in by_slot.items():
        if kind == "undo" and ("versioned", key) not in by_slot:
            problems.append(
                f"artifacts.migrations: {script.filename} undoes version {script.version}, but no "
                f"V{script.version.replace('.', '_')}__*.sql is listed; add it or remove the undo script"
            )
    return list(by_slot.values())


def _has_no_transaction_header(sql: str) -> bool:
    """True if a leading comment line (before the first statement) carries the marker."""
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            return False
        if _HEADER.match(stripped):
            return True
    return False
