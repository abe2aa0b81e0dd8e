"""One run's request: the Action inputs (or CLI flags) and the config they point at, both validated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.contract.deploy_config import DeployConfig
from orchestrator.redaction import Secret

__all__ = ["MODES", "Mode", "Request", "RunInputs"]

Mode = Literal["deploy", "plan", "rollback", "preview", "preview-teardown", "recover", "delete"]
MODES: tuple[str, ...] = ("deploy", "plan", "rollback", "preview", "preview-teardown", "recover", "delete")


@dataclass(frozen=True, slots=True)
class RunInputs:
    """The Action inputs (or CLI flags) after validation. Paths are absolute."""

    mode: Mode
    workspace: Path
    config_path: Path
    validation_run_id: str | None
    version: str
    image: str | None = None
    rollback_to: str | None = None
    pr_number: int | None = None
    github_token: Secret | None = None
    repository: str | None = None
    """owner/name, from GITHUB_REPOSITORY."""
    app_id: str | None = None
    """With mode delete: the id of the app to delete (or `app_name`)."""
    app_name: str | None = None
    """With mode delete: the name of the app to delete (or `app_id`)."""
    ignore_not_found: bool = False
    """With mode delete: an app that does not exist is nothing to do (exit 0), not an error."""


@dataclass(frozen=True, slots=True)
class Request:
    """One run's complete, validated request: inputs plus config."""

    inputs: RunInputs
    config: DeployConfig

    @property
    def validation_run_id(self) -> str | None:
        return self.inputs.validation_run_id or self.config.validation_run_id
