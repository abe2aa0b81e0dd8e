"""The run's record, once it is over: ledger, lineage, metrics, notification, the GitHub Deployment,
paging. Each is logged on failure and none is fatal."""

from __future__ import annotations

from orchestrator import metrics, notify
from orchestrator.compose import Collaborators
from orchestrator.contract import Request, Result
from orchestrator.errors import OrchestratorError, RollbackError
from orchestrator.github_updates import TrackedDeployment
from orchestrator.runlog import RunLog

__all__ = ["record_run"]


def record_run(
    request: Request,
    result: Result,
    parts: Collaborators,
    *,
    tracked: TrackedDeployment | None,
    error: OrchestratorError | None,
    log: RunLog,
) -> None:
    """Plan mode records nothing. A failed rollback (`error` a RollbackError) pages on-call."""
    if request.inputs.mode == "plan":
        return
    config = request.config
    if parts.ledger:
        parts.ledger.finish(result, run_url=parts.run_url)
    environment = config.environment
    metrics.record_run(result, config.metrics, request.inputs.workspace, environment=environment, log=log)
    notifier = notify.Notifier(config.notifications, parts.env, log=log)
    notifier.announce(result, environment=environment)
    if tracked is not None:
        tracked.finish(result.status, result.url, parts.run_url, result.error or f"{result.mode} succeeded")
    if isinstance(error, RollbackError):
        notifier.page(result, str(error))
