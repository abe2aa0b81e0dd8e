"""Team notifications (a Slack-compatible webhook) and on-call paging (PagerDuty Events API v2 shape).

The webhook URL is a secret (whoever has it can post to the channel): it is read from the
variable named by `notifications.webhook_url_env_var`, kept in a `Secret`, and never logged, not
even inside an exception message (requests quotes the URL path in its errors, and a Slack
webhook's secret is its path). The paging routing key is a secret too; it travels only in the
page's body, as the Events API requires.

Both sends retry (`orchestrator.http_retry`: backoff, honouring Retry-After) within a few seconds;
a failure is logged and reported as False, never raised: notifying must not change a deploy's outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from orchestrator.contract import NotificationsConfig, Result
from orchestrator.http_retry import RetryPolicy, TransientError, call_with_retries, retry_after_seconds
from orchestrator.redaction import Secret, redact, register
from orchestrator.runlog import RunLog

__all__ = ["Notifier", "page_event", "run_url", "webhook_message"]

_logger = logging.getLogger(__name__)

_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
_ICON = {"success": ":white_check_mark:", "rolled_back": ":leftwards_arrow_with_hook:", "failed": ":x:"}
_SEVERITY_TEXT = {"success": "succeeded", "rolled_back": "was rolled back", "failed": "failed"}


def run_url(env: Mapping[str, str]) -> str | None:
    """The link to this Actions run, when the runner's variables are present."""
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    repository, run_id = env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
    if not repository or not run_id:
        return None
    return f"{server.rstrip('/')}/{repository}/actions/runs/{run_id}"


def webhook_message(result: Result, *, environment: str | None = None, link: str | None = None) -> dict[str, Any]:
    """The webhook body: `text` (the fallback every client shows) plus Block Kit `blocks`."""
    details = result.deployment_details
    where = f" to {environment}" if environment else ""
    text = (
        f"{_ICON.get(result.status, '')} Deploy of {details.new_version}{where} "
        f"{_SEVERITY_TEXT.get(result.status, result.status)} ({details.duration_seconds:.1f}s)"
    ).strip()
    fields = [
        f"*Status*\n{result.status}",
        f"*New version*\n{details.new_version}",
        f"*Previous version*\n{details.previous_version}",
        f"*Duration*\n{details.duration_seconds:.1f}s",
        f"*Strategy*\n{details.strategy} on {details.platform}",
        f"*Deployment*\n{result.deployment_id}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    notes = []
    if result.rollback.triggered:
        outcome = "failed" if result.rollback.succeeded is False else "done"
        notes.append(f"Rollback {outcome}: {result.rollback.reason or 'no reason recorded'}")
    elif result.error:
        notes.append(f"Error ({result.failed_step or 'unknown step'}): {result.error}")
    if result.url:
        notes.append(f"Live URL: {result.url}")
    if notes:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": redact("\n".join(notes))[:2900]}})
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Workflow run>"}]})
    return {"text": redact(text), "blocks": blocks}


def page_event(result: Result, reason: str, *, routing_key: str, link: str | None = None) -> dict[str, Any]:
    """A PagerDuty Events API v2 trigger, deduplicated per deployment."""
    details = result.deployment_details
    failing = [
        {"endpoint": p.endpoint, "status_code": p.status_code, "response_time_ms": p.response_time_ms}
        for p in result.health_checks
        if not p.passed
    ]
    custom: dict[str, Any] = {
        "deployment_id": result.deployment_id,
        "status": result.status,
        "new_version": details.new_version,
        "previous_version": details.previous_version,
        "strategy": details.strategy,
        "platform": details.platform,
        "failed_step": result.failed_step,
        "reason": redact(reason),
        "rollback_reason": redact(result.rollback.reason or ""),
        "url": result.url,
        "failing_checks": failing[-10:],
        "migrations": [
            {"filename": m.filename, "direction": m.direction, "success": m.success} for m in result.migrations_applied
        ],
        "log_tail": [redact(f"{e.level}: {e.message}") for e in result.logs[-15:]],
        "run_url": link,
    }
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": f"deploy-orchestrator/{result.deployment_id}",
        "payload": {
            "summary": redact(f"Rollback of {details.new_version} to {details.previous_version} failed: {reason}")[
                :1024
            ],
            "source": f"deploy-orchestrator/{details.platform}",
            "severity": "critical",
            "component": details.new_version,
            "group": details.strategy,
            "class": "rollback_failed",
            "custom_details": {k: v for k, v in custom.items() if v not in (None, "")},
        },
    }
    if link:
        event["links"] = [{"href": link, "text": "Workflow run"}]
    return event


class Notifier:
    """Sends the team notification and the page. Neither method raises; both return whether it went out."""

    def __init__(
        self,
        config: NotificationsConfig,
        env: Mapping[str, str],
        *,
        log: RunLog | None = None,
        session: requests.Session | None = None,
        budget_seconds: float = 8.0,
        backoff_initial: float = 0.3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config
        self._env = env
        self._runlog = log
        self._session = session or requests.Session()
        self._budget = budget_seconds
        self._policy = RetryPolicy(retries=None, initial_wait=backoff_initial, max_wait=3.0, jitter=0.1)
        self._sleep = sleep

    def _say(self, level: str, message: str) -> None:
        if self._runlog is not None:
            getattr(self._runlog, level)(message)
        else:
            _logger.log(logging.WARNING if level != "info" else logging.INFO, "%s", message)

    def _secret(self, variable: str | None) -> Secret | None:
        value = self._env.get(variable) if variable else None
        return Secret(value, variable or "secret") if value else None

    def announce(self, result: Result, *, environment: str | None = None) -> bool:
        """Post the run's outcome to the team webhook if its status is in `notifications.on`."""
        variable = self._config.webhook_url_env_var
        if variable is None or result.status not in self._config.on:
            return False
        url = self._secret(variable)
        if url is None:
            self._say("warn", f"team notification skipped: ${variable} is not set")
            return False
        # The secret part of a webhook URL is its path; urllib3 logs the path alone at DEBUG, so
        # the path is registered too for the log filter to mask.
        parts = urlsplit(url.reveal())
        register(parts.path + (f"?{parts.query}" if parts.query else ""))
        body = webhook_message(result, environment=environment, link=run_url(self._env))
        return self._post(url.reveal(), body, what=f"team notification (webhook from ${variable})")

    def page(self, result: Result, reason: str) -> bool:
        """Trigger an on-call page (the rollback itself failed). Deduplicated per deployment."""
        if not self._config.paging_url:
            self._say("error", "the rollback failed and no notifications.paging_url is configured: nobody was paged")
            return False
        variable = self._config.paging_routing_key_env_var
        key = self._secret(variable)
        if key is None:
            self._say(
                "error", f"the rollback failed but ${variable or 'paging_routing_key_env_var'} is not set: not paged"
            )
            return False
        body = page_event(result, reason, routing_key=key.reveal(), link=run_url(self._env))
        return self._post(self._config.paging_url, body, what=f"on-call page to {self._config.paging_url}")

    def _post(self, url: str, body: dict[str, Any], *, what: str) -> bool:
        """POST with retries; `what` is the only description of the target that is ever logged."""
        deadline = time.monotonic() + self._budget
        timeout = self._config.timeout_seconds

        def attempt() -> None:
            remaining = max(0.5, deadline - time.monotonic())
            try:
                response = self._session.post(url, json=body, timeout=min(timeout, remaining))
            except requests.RequestException as exc:
                # Only the type: the message would quote the (secret) URL path.
                raise TransientError(type(exc).__name__, ambiguous=True) from None
            if response.status_code in _RETRYABLE:
                raise TransientError(f"HTTP {response.status_code}", retry_after=retry_after_seconds(response.headers))
            if response.status_code >= 300:
                raise _NotSent(f"HTTP {response.status_code}")

        try:
            call_with_retries(
                what,
                attempt,
                self._policy,
                on_exhausted=lambda last, attempts: _NotSent(f"{last.detail} after {attempts} attempt(s)"),
                deadline=deadline,
                sleep=self._sleep,
            )
        except _NotSent as exc:
            self._say("warn", f"{what} not sent: {exc}")
            return False
        self._say("info", f"{what} sent")
        return True


class _NotSent(Exception):
    """A status retrying cannot fix (4xx other than 408/425/429), or the retries ran out."""
