"""Paths the config names, held inside the workspace: one check for every section that has them."""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import ConfigError
from orchestrator.safe_files import require_kind, resolve_safely

__all__ = ["outside_problem"]


def outside_problem(
    workspace: Path, rel: str, field: str, *, must_exist: bool, kinds: tuple[str, ...] = ("file", "directory")
) -> str | None:
    """Why `rel` is not a usable path inside the workspace (a loop, outside, missing, a FIFO...), or None."""
    try:
        target = resolve_safely(workspace / rel, field=field, shown=repr(rel))
        if target != workspace and workspace not in target.parents:
            return f"{field}: {rel!r} leads outside the workspace ({workspace}); use a path inside it"
        if require_kind(target, field=field, shown=repr(rel), want=kinds) is None and must_exist:
            return f"{field}: {rel!r} does not exist in the workspace"
    except ConfigError as exc:
        return exc.problems[0]
    return None
