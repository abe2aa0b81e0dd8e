"""Where a local target lives: production on `local.listen`, a pull request's preview beside it.

A preview must never be retired by a production deploy nor offered as a rollback target, so each
PR gets its own state directory (`<state_dir>/previews/pr-<n>`) and therefore its own supervisor
and proxy. Its address is chosen once and remembered there, so every push to the PR keeps the
same URL.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

from orchestrator.contract import LocalConfig
from orchestrator.platforms.registry import Target

__all__ = ["config_for", "state_dir_of"]


def state_dir_of(config: LocalConfig, workspace: Path) -> Path:
    """The absolute state directory: `local.state_dir`, relative to the workspace unless absolute."""
    return (Path(workspace) / config.state_dir).resolve()


def config_for(config: LocalConfig, workspace: Path, target: Target) -> LocalConfig:
    """The local config of `target`: production's as it is; a preview's in its own directory, on its
    own remembered address (chosen now for a new preview)."""
    if not target.is_preview:
        return config
    folder = state_dir_of(config, workspace) / "previews" / target.name
    folder.mkdir(parents=True, exist_ok=True)
    remembered = folder / "listen"
    if not remembered.exists():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            remembered.write_text(f"127.0.0.1:{s.getsockname()[1]}")
    return dataclasses.replace(config, state_dir=folder, listen=remembered.read_text().strip())
