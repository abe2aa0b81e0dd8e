"""Delivery of one preference pair to agentbench: `POST {url}/api/dpo-pairs`.

Each request carries `Authorization: Bearer <token>` and an `Idempotency-Key` stable per pair,
so a re-send after an ambiguous failure (timeout after the server stored it) is harmless on
agentbench's side; the outbox still tracks delivered state so we never rely on that.

Outcomes of one attempt:
    2xx with a submission_id            delivered
    408, 425, 429, 5xx, no answer       RetryableDeliveryError (429/503 carry Retry-After)
    400, 413, 422                       RejectedPairError: this pair's content is refused; retrying won't help
    any other status (401, 403, 404...) DeliveryError: the whole endpoint is unusable (token, URL)

`submit_with_retry` retries the retryable ones (`orchestrator.http_retry`: exponential backoff,
honouring Retry-After) and never sleeps past the caller's deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests

from orchestrator.errors import OrchestratorError
from orchestrator.http_retry import RetryPolicy, TransientError, call_with_retries, retry_after_seconds
from orchestrator.redaction import Secret, redact

__all__ = ["AgentbenchClient", "DeliveryError", "RejectedPairError", "RetryableDeliveryError"]

log = logging.getLogger(__name__)

_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
_REJECTED = frozenset({400, 413, 422})


class DeliveryError(OrchestratorError):
    """agentbench did not take the pair. Never escapes the hardening API."""

    step = "hardening"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableDeliveryError(DeliveryError):
    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class RejectedPairError(DeliveryError):
    """agentbench refused this pair's content; other pairs may still go through."""


def _body_hint(response: requests.Response) -> str:
    return redact(response.text[:200].replace("\n", " ")) if response.text else ""


class AgentbenchClient:
    """One agentbench endpoint. Reuses one keep-alive `requests.Session` for every pair."""

    def __init__(
        self,
        url: str,
        token: Secret,
        *,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        backoff_initial: float = 0.2,
        backoff_max: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/api/dpo-pairs"
        self._token = token
        self._timeout = timeout
        self._session = session or requests.Session()
        self._policy = RetryPolicy(
            retries=None, initial_wait=backoff_initial, max_wait=backoff_max, jitter=backoff_initial / 2
        )
        self._sleep = sleep

    def close(self) -> None:
        self._session.close()

    def submit(self, body: dict[str, Any], idempotency_key: str, *, timeout: float | None = None) -> str:
        """POST one pair once; return agentbench's submission_id. Raises a DeliveryError subclass."""
        headers = {
            "Authorization": f"Bearer {self._token.reveal()}",
            "Idempotency-Key": idempotency_key,
            "Content-Type": "application/json",
        }
        try:
            response = self._session.post(
                self.endpoint, json=body, headers=headers, timeout=timeout or self._timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            # The exception text can quote the request; only its type is safe and useful here.
            raise RetryableDeliveryError(f"no answer from {self.endpoint} ({type(exc).__name__})") from None
        status = response.status_code
        if 200 <= status < 300:
            try:
                submission = response.json().get("submission_id")
            except (ValueError, AttributeError):
                submission = None
            if not submission:
                # Accepted but unreadable: re-sending with the same key is safe and gets the id.
                raise RetryableDeliveryError(f"{self.endpoint} answered {status} without a submission_id")
            return str(submission)
        hint = _body_hint(response)
        message = f"{self.endpoint} answered {status}" + (f": {hint}" if hint else "")
        if status in _RETRYABLE:
            raise RetryableDeliveryError(message, status=status, retry_after=retry_after_seconds(response.headers))
        if status in _REJECTED:
            raise RejectedPairError(message, status=status)
        if status in (401, 403):
            message += " (check the token in the environment variable named by agentbench_config.token_env_var)"
        elif status == 404:
            message += " (check agentbench_config.url: the orchestrator appends /api/dpo-pairs)"
        raise DeliveryError(message, status=status)

    def submit_with_retry(self, body: dict[str, Any], idempotency_key: str, *, deadline: float) -> str:
        """`submit`, retried on RetryableDeliveryError until `deadline` (a `time.monotonic()` value).

        A wait (backoff or Retry-After) that would end past the deadline is not started: the
        last error is raised instead and the pair stays queued for the next run.
        """

        def attempt() -> str:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RetryableDeliveryError("delivery budget used up before the attempt")
            try:
                return self.submit(body, idempotency_key, timeout=min(self._timeout, max(remaining, 0.5)))
            except RetryableDeliveryError as exc:
                # The key makes a re-send harmless, so nothing is ambiguous here.
                raise _Again(exc) from exc

        def exhausted(last: TransientError, _attempts: int) -> RetryableDeliveryError:
            status = last.error.status if isinstance(last, _Again) else None
            return RetryableDeliveryError(last.detail, status=status, retry_after=last.retry_after)

        return call_with_retries(
            "agentbench delivery", attempt, self._policy, on_exhausted=exhausted, deadline=deadline, sleep=self._sleep
        )


class _Again(TransientError):
    """A RetryableDeliveryError inside the retry loop."""

    def __init__(self, error: RetryableDeliveryError) -> None:
        super().__init__(str(error), retry_after=error.retry_after)
        self.error = error
