"""The tree digest of one Odoo module directory (the algorithm is in the package docstring)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from orchestrator.artifacts.workspace_files import require_inside
from orchestrator.errors import ConfigError
from orchestrator.safe_files import hash_regular, resolve_safely

__all__ = ["digest_module_tree"]

# Odoo writes these at run time: they are not part of what was validated.
_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc",)


def digest_module_tree(directory: Path, *, field: str = "module") -> str:
    """The tree digest of one module directory (algorithm in the package docstring). Raises ConfigError."""
    top = directory.resolve()
    digest = hashlib.sha256()
    for relative, path, is_link in sorted(_tree_entries(top, str(top), "", field), key=lambda item: item[0].encode()):
        if is_link:
            digest.update(f"L - {relative}\0{os.readlink(path)}\n".encode())
        else:
            # Not followed: a file swapped for a symlink since the listing is refused, never read through it.
            sha, mode = hash_regular(path, field=field, shown=relative, follow_symlinks=False)
            executable = "x" if mode & 0o111 else "-"
            digest.update(f"F {executable} {relative}\0{sha}\n".encode())
    return digest.hexdigest()


def _tree_entries(top: Path, directory: str, prefix: str, field: str) -> Iterator[tuple[str, str, bool]]:
    """(relative POSIX path, path, is a symlink) of every entry the digest covers. Paths are strings,
    not pathlib's: a snapshot holds thousands of files, and the supervisor digests it at every start."""
    with os.scandir(directory) as scan:
        entries = list(scan)
    for entry in entries:
        relative = prefix + entry.name
        if entry.is_symlink():
            target = resolve_safely(Path(entry.path), field=field, shown=f"symlink {relative}")
            require_inside(
                target,
                top,
                outside=f"{field}: symlink {relative} resolves to {target}, outside the module directory {top}; "
                "replace it with the file itself (a deploy ships only what is inside the module)",
                missing=f"{field}: symlink {relative} is dangling (target {target} does not exist)",
            )
            yield relative, entry.path, True
        elif entry.is_dir(follow_symlinks=False):
            if entry.name not in _SKIPPED_DIRS:
                yield from _tree_entries(top, entry.path, relative + "/", field)
        elif entry.is_file(follow_symlinks=False):
            if not entry.name.endswith(_SKIPPED_SUFFIXES):
                yield relative, entry.path, False
        else:
            raise ConfigError(f"{field}: {relative} is not a regular file, directory or symlink; remove it")
