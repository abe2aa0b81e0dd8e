"""The checks on the paths of a `deployment_config.local` block, for each platform that runs what it
describes: `local` on this machine and `hosts` on every server (so `hosts` checks it with these)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from orchestrator.paths import outside_problem

__all__ = ["release_path_problems"]


def release_path_problems(
    local: Mapping[str, Any], workspace: Path, *, runs_from: str, keys: Iterable[str] = ("state_dir", "cwd", "source")
) -> Iterator[str]:
    """Each of `keys` the block sets stays inside the workspace (`source` must exist), and `cwd` lies
    inside `source`: a release runs from its `runs_from` files (a copy of source), never the workspace."""
    for key in keys:
        if key in local:
            problem = outside_problem(
                workspace, local[key], f"deployment_config.local.{key}", must_exist=key == "source"
            )
            if problem:
                yield problem
    if "cwd" in local:
        source = (workspace / local.get("source", ".")).resolve()
        cwd = (workspace / local["cwd"]).resolve()
        if cwd != source and source not in cwd.parents:
            yield (
                f"deployment_config.local.cwd: {local['cwd']!r} is outside local.source "
                f"({local.get('source', '.')!r}); releases run from their {runs_from} files, so put cwd inside source"
            )
