"""Files inside the workspace, named as digests name them and hashed without hanging.

Every artifact is a path the user listed: it must exist and resolve inside the workspace, and it
is read through `safe_files` (no FIFO, device or socket is ever opened).
"""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.errors import ConfigError
from orchestrator.safe_files import DirectoryResolver, hash_regular, resolve_safely

__all__ = ["require_inside", "resolve_in_workspace", "sha256_file"]


def resolve_in_workspace(
    root: Path, entry: Path, field: str, *, resolver: DirectoryResolver | None = None
) -> tuple[str, Path]:
    """(workspace-relative POSIX key, resolved path) of an existing path; `root` must be resolved.

    The key is how digests name the artifact. Raises ConfigError (naming `field`) when the path
    does not exist or resolves outside the workspace. `resolver` resolves many files of a few directories.
    """
    lexical = entry if entry.is_absolute() else root / entry
    if resolver is not None:
        resolved = resolver.resolve(lexical, shown=str(entry))
    else:
        resolved = resolve_safely(lexical, field=field, shown=str(entry))
    require_inside(
        resolved,
        root,
        outside=f"{field}: {entry} resolves to {resolved}, outside the workspace {root}; "
        "artifacts must live in the repository being deployed",
        missing=f"{field}: {entry} does not exist in the workspace {root}",
    )
    # The key follows the path as written (a symlinked folder keeps its own name), unless it
    # only reaches the workspace through resolution (an absolute path via a symlinked root).
    normalised = Path(os.path.normpath(lexical))
    base = normalised if normalised.is_relative_to(root) else resolved
    return base.relative_to(root).as_posix(), resolved


def require_inside(resolved: Path, top: Path, *, outside: str, missing: str) -> None:
    """Raise ConfigError(`outside`) unless `resolved` lies below `top`, then ConfigError(`missing`)
    unless it exists: what a deploy ships must be inside what was validated, and be there."""
    if not resolved.is_relative_to(top):
        raise ConfigError(outside)
    if not resolved.exists():
        raise ConfigError(missing)


def sha256_file(path: Path, *, field: str, shown: str) -> str:
    """The sha256 (lowercase hex) of a regular file's bytes. Raises ConfigError naming `field` and `shown`."""
    return hash_regular(path, field=field, shown=shown)[0]
