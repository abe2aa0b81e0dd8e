"""The tree digest of one Odoo module directory (the algorithm is in the package docstring)."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from orchestrator.artifacts.workspace_files import require_inside, sha256_file
from orchestrator.errors import ConfigError
from orchestrator.safe_files import resolve_safely

__all__ = ["digest_module_tree"]

# Odoo writes these at run time: they are not part of what was validated.
_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc",)


def digest_module_tree(directory: Path, *, field: str = "module") -> str:
    """The tree digest of one module directory (algorithm in the package docstring). Raises ConfigError."""
    top = directory.resolve()
    digest = hashlib.sha256()
    for relative, path in sorted(_tree_entries(top, top, field), key=lambda item: item[0].encode()):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            digest.update(f"L - {relative}\0{os.readlink(path)}\n".encode())
        else:
            executable = "x" if info.st_mode & 0o111 else "-"
            digest.update(f"F {executable} {relative}\0{sha256_file(path, field=field, shown=relative)}\n".encode())
    return digest.hexdigest()


def _tree_entries(top: Path, directory: Path, field: str) -> Iterator[tuple[str, Path]]:
    with os.scandir(directory) as scan:
        entries = list(scan)
    for entry in entries:
        path = Path(entry.path)
        relative = path.relative_to(top).as_posix()
        if entry.is_symlink():
            target = resolve_safely(path, field=field, shown=f"symlink {relative}")
            require_inside(
                target,
                top,
                outside=f"{field}: symlink {relative} resolves to {target}, outside the module directory {top}; "
                "replace it with the file itself (a deploy ships only what is inside the module)",
                missing=f"{field}: symlink {relative} is dangling (target {target} does not exist)",
            )
            yield relative, path
        elif entry.is_dir(follow_symlinks=False):
            if entry.name not in _SKIPPED_DIRS:
                yield from _tree_entries(top, path, field)
        elif entry.is_file(follow_symlinks=False):
            if not entry.name.endswith(_SKIPPED_SUFFIXES):
                yield relative, path
        else:
            raise ConfigError(f"{field}: {relative} is not a regular file, directory or symlink; remove it")
