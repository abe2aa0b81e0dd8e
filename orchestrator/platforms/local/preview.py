"""Pull-request previews on the local platform: one supervisor per PR, on its own address.

A preview must never be retired by a production deploy nor offered as a rollback target, so each
PR gets its own state directory (`<state_dir>/previews/pr-<n>`) and therefore its own supervisor
and proxy. The address is chosen once and remembered there, so every push to the PR keeps the
same URL; the newest push takes all traffic and the previous one is stopped.
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
from pathlib import Path

from orchestrator.contract import LocalConfig
from orchestrator.platforms.base import Release
from orchestrator.platforms.local.platform import LocalPlatform, state_dir_of, supervisor_stop

__all__ = ["LocalPreviews"]


class LocalPreviews:
    def __init__(self, config: LocalConfig, workspace: Path, *, withheld: frozenset[str] = frozenset()) -> None:
        self._config = config
        self._workspace = workspace
        # The names kept out of the supervisor's (and so the PR code's) environment: the orchestrator's secrets.
        self._withheld = withheld

    def _dir(self, pr_number: int) -> Path:
        return state_dir_of(self._config, self._workspace) / "previews" / f"pr-{pr_number}"

    def _config_for(self, pr_number: int) -> LocalConfig:
        folder = self._dir(pr_number)
        folder.mkdir(parents=True, exist_ok=True)
        remembered = folder / "listen"
        if not remembered.exists():
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                remembered.write_text(f"127.0.0.1:{s.getsockname()[1]}")
        return dataclasses.replace(self._config, state_dir=folder, listen=remembered.read_text().strip())

    def create(self, pr_number: int, image: str | None, version: str) -> Release:
        """Start `version` as PR `pr_number`'s preview and give it the preview address. Raises DeployError."""
        production = state_dir_of(self._config, self._workspace)
        platform = LocalPlatform(
            self._config_for(pr_number), self._workspace, withheld=self._withheld, leave_out=(production,)
        )
        platform.start(version, image)
        platform.route({version: 100})
        platform.retire(keep=0)
        return Release(version=version, url=platform.live_url(), image=image, ref=f"pr-{pr_number}")

    def delete(self, pr_number: int) -> bool:
        """Stop and forget PR `pr_number`'s preview. False when there was none. Idempotent."""
        folder = self._dir(pr_number)
        if not folder.exists():
            return False
        supervisor_stop(self._config_for(pr_number), self._workspace)
        shutil.rmtree(folder, ignore_errors=True)
        return True
