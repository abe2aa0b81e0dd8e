"""The migration files an `artifacts.migrations` entry names, found as the migration runner finds them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from orchestrator.artifacts.workspace_files import resolve_in_workspace
from orchestrator.errors import ConfigError
from orchestrator.safe_files import DirectoryResolver, sql_files_below

__all__ = ["migration_files", "same_file_name_problems"]


def migration_files(root: Path, entry: Path, field: str) -> Iterator[tuple[str, Path]]:
    """(key, resolved path) of the file `entry` names, or of every `*.sql` below the directory it names."""
    key, path = resolve_in_workspace(root, entry, field)
    if path.is_dir():
        folder = root / key
        resolver = DirectoryResolver(field=field)
        for listed in sql_files_below(path):
            if listed.is_dir:
                continue
            if listed.is_file:
                # Below the resolved directory, through no symlink: inside the workspace, and this file.
                yield (f"{key}/{listed.relative}" if key != "." else listed.relative), listed.path
                continue
            file = folder / listed.relative
            if not file.is_dir():
                file_key, resolved = resolve_in_workspace(root, file, field, resolver=resolver)
                if not resolved.is_file():
                    raise ConfigError(f"{field}: {file_key} is not a regular file")
                yield file_key, resolved
    elif path.is_file():
        yield key, path
    else:
        raise ConfigError(f"{field}: {key} is neither a file nor a directory")


def same_file_name_problems(keys: Iterable[str]) -> list[str]:
    """One problem per file name two migration keys share: the runner identifies migrations by file name."""
    by_name: dict[str, list[str]] = {}
    for key in keys:
        by_name.setdefault(key.rsplit("/", 1)[-1], []).append(key)
    return [
        f"artifacts.migrations: {', '.join(sorted(keys))} share the file name {name}; "
        "the migration runner identifies migrations by file name, so rename one"
        for name, keys in sorted(by_name.items())
        if len(keys) > 1
    ]
