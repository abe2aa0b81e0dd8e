"""The hardening step as the pipeline uses it: one object per run over the outbox and agentbench.

    hardening = Hardening(config, ledger_dsn, workspace, env, log)
    hardening.deliver_pending()          # first thing in a run: earlier runs' leftovers
    outcome = hardening.emit(context)    # after a failure: build, store, deliver
    hardening.markdown()                 # the report's section

No method raises; delivery problems are logged and reported in the outcome.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from orchestrator.contract import DeployConfig, HardeningOutcome
from orchestrator.hardening.agentbench import AgentbenchClient
from orchestrator.hardening.delivery import DEFAULT_BUDGET_SECONDS, DeliveryReport, HardeningReport, emit, flush
from orchestrator.hardening.outbox import Outbox
from orchestrator.hardening.pairs import FailureContext
from orchestrator.hardening.summary import hardening_markdown
from orchestrator.notify import run_url
from orchestrator.redaction import Secret
from orchestrator.runlog import RunLog

__all__ = ["Hardening"]

_LOG_EXCERPT_LINES = 20


class Hardening:
    """This run's hardening: the outbox in the ledger database (`dsn`), else the workspace file."""

    def __init__(
        self,
        config: DeployConfig,
        dsn: Secret | None,
        workspace: Path,
        env: Mapping[str, str],
        log: RunLog | None = None,
        *,
        budget_seconds: float = DEFAULT_BUDGET_SECONDS,
        schema: str = "public",
    ) -> None:
        self._config = config
        self._env = env
        self._runlog = log
        self._budget = budget_seconds
        self.outbox = Outbox(dsn if config.ledger.enabled else None, workspace, schema=schema)
        self.client = self._client()
        self.backlog: DeliveryReport | None = None
        self.report: HardeningReport | None = None

    def _client(self) -> AgentbenchClient | None:
        agentbench = self._config.agentbench
        token = self._env.get(agentbench.token_env_var)
        if not token:
            self._warn(
                f"${agentbench.token_env_var} is not set: preference pairs are queued, not delivered "
                "(set it to the agentbench token)"
            )
            return None
        return AgentbenchClient(
            agentbench.url, Secret(token, agentbench.token_env_var), timeout=agentbench.timeout_seconds
        )

    def _warn(self, message: str) -> None:
        if self._runlog is not None:
            self._runlog.warn(message)

    def deliver_pending(self) -> DeliveryReport:
        """Deliver what earlier runs left queued (importing the fallback file first), oldest first."""
        self.backlog = flush(self.outbox, self.client, self._budget)
        if self.backlog.delivered or self.backlog.imported:
            self._info(
                f"hardening: delivered {self.backlog.delivered} queued preference pair(s) from earlier runs"
                + (f", imported {self.backlog.imported} from the fallback file" if self.backlog.imported else "")
            )
        if self.backlog.stopped:
            self._warn(f"hardening: {self.backlog.remaining} pair(s) still queued: {self.backlog.stopped}")
        return self.backlog

    def _info(self, message: str) -> None:
        if self._runlog is not None:
            self._runlog.info(message)

    def emit(self, *contexts: FailureContext) -> HardeningOutcome:
        """Build one pair per failure, store it, deliver what is queued. Honours emit_dpo_on_failure."""
        if not self._config.agentbench.emit_dpo_on_failure:
            return HardeningOutcome()
        excerpt = self._log_excerpt()
        link = run_url(self._env)
        filled = [
            dataclasses.replace(c, log_excerpt=c.log_excerpt or excerpt, run_url=c.run_url or link) for c in contexts
        ]
        self.report = emit(filled, self.outbox, self.client, self._budget)
        outcome = self.report.to_outcome()
        if outcome.fallback_file:
            self._warn(f"hardening: ledger database unreachable, pair(s) kept in {outcome.fallback_file}")
        if outcome.queued:
            self._warn(f"hardening: {outcome.queued} pair(s) queued for the next run")
        elif outcome.delivered:
            self._info(f"hardening: pair delivered to agentbench (submission {outcome.agentbench_submission_id})")
        return outcome

    def queued_outcome(self) -> HardeningOutcome:
        """The outcome when this run generated no pair: what is still queued from earlier runs."""
        remaining = self.backlog.remaining if self.backlog else 0
        return HardeningOutcome(queued=remaining)

    def markdown(self) -> str:
        return hardening_markdown(self.report, self.backlog)

    def close(self) -> None:
        self.outbox.close()
        if self.client is not None:
            self.client.close()

    def _log_excerpt(self) -> tuple[str, ...]:
        if self._runlog is None:
            return ()
        entries = self._runlog.entries[-_LOG_EXCERPT_LINES:]
        return tuple(f"{e.timestamp} {e.level}: {e.message}" for e in entries)
