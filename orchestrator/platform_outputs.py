"""What a platform reports beyond the contract: `app`, `build_logs` and `deploy_logs` (app_action's
outputs), and the logs printed in the job log.

A platform that has them offers `run_outputs() -> PlatformOutputs | None` (DigitalOcean does); the
pipeline puts them in the result under `platform_outputs` and `report.outputs` turns them into the
Action's outputs. Everything here is already bounded and redacted by the platform, and redacted
once more on the way out.

Printed logs are someone else's text in our job log: between `::stop-commands::` markers, so a
line that looks like a workflow command (`::set-output`, `::endgroup::`) is printed, not obeyed.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO, runtime_checkable

from orchestrator.redaction import redact

__all__ = ["APP_LIMIT", "PlatformOutputs", "ReportsOutputs", "collect", "print_groups"]

APP_LIMIT = 256 * 1024
"""Bytes of the `app` output's JSON; a larger app is reported without its deployments' specs."""


@dataclass(frozen=True, slots=True)
class PlatformOutputs:
    app: dict[str, Any] | None = None
    build_logs: str = ""
    deploy_logs: str = ""
    printed: tuple[tuple[str, str], ...] = field(default=())
    """(group title, text) to print in the job log."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"build_logs": self.build_logs, "deploy_logs": self.deploy_logs}
        if self.app is not None:
            data["app"] = _bounded_app(self.app)
        return data


@runtime_checkable
class ReportsOutputs(Protocol):
    def run_outputs(self) -> PlatformOutputs | None: ...


def collect(platform: object) -> PlatformOutputs | None:
    """The platform's outputs, or None when it has none (or cannot say: never fails a run)."""
    if not isinstance(platform, ReportsOutputs):
        return None
    try:
        return platform.run_outputs()
    except Exception:
        return None


def print_groups(outputs: PlatformOutputs, stream: TextIO | None = None) -> None:
    """Each printed text in its own group (Actions) or under a heading (anywhere else)."""
    out = stream or sys.stdout
    actions = os.environ.get("GITHUB_ACTIONS") == "true"
    for title, text in outputs.printed:
        if not text.strip():
            continue
        if actions:
            token = uuid.uuid4().hex
            out.write(f"::group::{title}\n::stop-commands::{token}\n{redact(text)}\n::{token}::\n::endgroup::\n")
        else:
            out.write(f"--- {title} ---\n{redact(text)}\n--- end of {title} ---\n")
    out.flush()


def _bounded_app(app: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(app)) <= APP_LIMIT:
        return app
    slim = {k: v for k, v in app.items() if not k.endswith("_deployment")}
    slim["truncated"] = "deployments left out to fit the output; see the control panel"
    return slim
