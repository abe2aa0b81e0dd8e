"""Best effort: how the pipeline calls GitHub.

GitHub only mirrors what a run did; it never decides it. `GitHubUpdates` runs each call of the
`github.GitHubClient` so that a failure is logged as a warning and the run goes on, and it stops
calling a GitHub that is unreachable, rate-limited past the budget, or refusing the token.
`track_deployment` and `TrackedDeployment` report one run as a GitHub Deployment through it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from orchestrator.github import DeploymentState, GitHubClient, GitHubError, LogSink
from orchestrator.redaction import redact

__all__ = ["FinishStatus", "GitHubUpdates", "TrackedDeployment", "track_deployment"]

log = logging.getLogger(__name__)

FinishStatus = Literal["success", "failed", "rolled_back"]

T = TypeVar("T")


class GitHubUpdates:
    """Runs GitHub side effects best-effort: a GitHubError is logged as a warning and swallowed.

    After an error marked `unavailable` the remaining calls of the run are skipped without trying,
    so a GitHub outage delays a deploy by one retry budget at most. `skipped` lists what was lost.
    """

    def __init__(self, client: GitHubClient | None, log_to: LogSink | None = None) -> None:
        self.client = client
        self._log = log_to
        self._gave_up = False
        self.skipped: list[str] = []

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def run(self, what: str, action: Callable[[GitHubClient], T]) -> T | None:
        """`action(client)`, or None when GitHub is off, gave up earlier, or this call failed."""
        if self.client is None:
            return None
        if self._gave_up:
            self.skipped.append(what)
            return None
        try:
            return action(self.client)
        except GitHubError as exc:
            self.skipped.append(what)
            _warn(self._log, f"GitHub: {what} skipped: {exc}. The run goes on; GitHub only mirrors it.")
            if exc.unavailable:
                self._gave_up = True
                _warn(self._log, "GitHub: unavailable; the remaining GitHub updates of this run are skipped")
            return None


@dataclass
class TrackedDeployment:
    """A GitHub Deployment this run reports to; `deployment_id` is None when GitHub was skipped."""

    updates: GitHubUpdates
    deployment_id: int | None
    environment: str

    def finish(self, status: FinishStatus, url: str | None, log_url: str | None, description: str) -> None:
        """Report the run's outcome: success → success (with `url`), failed → failure,
        rolled_back → failure whose description says it was rolled back. Never raises."""
        if self.deployment_id is None:
            return
        deployment_id = self.deployment_id
        state: DeploymentState = "success" if status == "success" else "failure"
        text = f"rolled back: {description}" if status == "rolled_back" else description
        environment_url = url if status == "success" else None
        self.updates.run(
            f"Deployment status {state}",
            lambda gh: gh.set_status(
                deployment_id, state, environment_url=environment_url, log_url=log_url, description=text
            ),
        )


def track_deployment(
    github: GitHubClient | GitHubUpdates | None,
    *,
    ref: str,
    environment: str,
    production: bool = True,
    transient: bool = False,
    description: str = "",
    payload: Mapping[str, Any] | None = None,
    log_url: str | None = None,
    log_to: LogSink | None = None,
) -> TrackedDeployment:
    """Create a GitHub Deployment for this run and mark it `in_progress`. Never raises on GitHub errors."""
    updates = github if isinstance(github, GitHubUpdates) else GitHubUpdates(github, log_to)
    deployment_id = updates.run(
        "Deployment",
        lambda gh: gh.create_deployment(
            ref,
            environment,
            transient=transient,
            production=production,
            description=description,
            payload=dict(payload or {}),
        ),
    )
    if deployment_id is not None:
        updates.run(
            "Deployment status in_progress",
            lambda gh: gh.set_status(
                deployment_id, "in_progress", environment_url=None, log_url=log_url, description=description
            ),
        )
    return TrackedDeployment(updates, deployment_id, environment)


def _warn(sink: LogSink | None, message: str) -> None:
    if sink is None:
        log.warning(redact(message))
    else:
        sink.warn(message)
