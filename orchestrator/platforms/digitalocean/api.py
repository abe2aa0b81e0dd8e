"""The DigitalOcean API as we call it: pydo underneath, our retry policy and our errors on top.

pydo's built-in azure-core retry is switched off (`retry_total=0`) because it re-sends POSTs on
500/503/504, which for App Platform means a second deployment. Instead:
- reads (GET) and plain updates are retried on transient failures (429 honouring Retry-After,
  5xx, timeouts, resets), a bounded number of times with bounded waits (`orchestrator.http_retry`);
- calls that create something (a deployment, a rollback, an app) go through `create()`: after an
  ambiguous failure (the request may have been processed: 5xx, timeout, reset) we *look* first,
  before re-sending and before giving up, and re-send only when the look proves nothing was created;
- 401/403 are never retried: the token is wrong and waiting will not fix it.

Every failure leaves as `DeployError(platform="digitalocean", operation=...)` naming the operation,
the HTTP status and DigitalOcean's own message. The token is unwrapped only to build the client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pydo
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies import SansIOHTTPPolicy

from orchestrator import http_retry
from orchestrator.errors import DeployError
from orchestrator.http_retry import TransientError, call_with_retries, rate_limited
from orchestrator.redaction import Secret, redact

__all__ = ["AppsApi", "NotFoundError", "RetryPolicy"]

log = logging.getLogger(__name__)
T = TypeVar("T")
PLATFORM = "digitalocean"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy(http_retry.RetryPolicy):
    """How hard one API call tries. Defaults follow the seed: 3 retries with backoff."""

    initial_wait: float = 1.0
    max_wait: float = 10.0
    max_retry_after: float | None = 60.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


class NotFoundError(DeployError):
    """The app or deployment does not exist (HTTP 404)."""


def _capture(pipeline_response: Any, body: Any, _headers: Any) -> tuple[int, Any, Any]:
    # pydo returns 404 bodies instead of raising; this `cls` hook hands us the status too.
    response = pipeline_response.http_response
    return response.status_code, body, response.headers


class AppsApi:
    """App Platform calls with retries and error mapping. Thread-compatible, not thread-safe."""

    def __init__(
        self,
        token: Secret,
        *,
        endpoint: str,
        verify: str | bool,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = policy
        self._token_name = token.name
        self._sleep = sleep
        self.client = pydo.Client(
            token.reveal(),
            endpoint=endpoint,
            connection_verify=verify,
            retry_total=0,
            connection_timeout=policy.connect_timeout,
            read_timeout=policy.read_timeout,
            # The network-trace policy prints request headers (Authorization included) in clear
            # when `logging_enable` is set; a no-op policy makes that impossible. azure-core's
            # HttpLoggingPolicy stays: it logs "Authorization: REDACTED".
            logging_policy=SansIOHTTPPolicy(),
        )

    @property
    def apps(self) -> Any:
        return self.client.apps

    def read(self, operation: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run an idempotent call, retrying transient failures. Raises DeployError / NotFoundError."""
        return self._retrying(operation, lambda: self._once(operation, call, args, kwargs))

    def create(
        self,
        operation: str,
        call: Callable[[], T],
        look: Callable[[], T | None],
    ) -> T:
        """Run a call that creates something; never create it twice.

        `call` performs the request (through `once()`); after an ambiguous failure `look` searches
        for what the failed attempt may have created and its result is returned when found. Only
        when the look finds nothing is the request sent again; a look that fails stops the call.
        """

        def look_for_it(failure: TransientError) -> T | None:
            try:
                return look()
            except DeployError as look_error:
                raise DeployError(
                    f"{operation}: the request failed ambiguously ({failure.detail}) and checking whether it "
                    f"went through failed too ({look_error}); not re-sending it, to avoid a duplicate. "
                    "Check the app in the DigitalOcean control panel.",
                    platform=PLATFORM,
                    operation=operation,
                ) from look_error

        return self._retrying(operation, call, look_for_it)

    def once(self, operation: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One attempt, no retry: for `create()`'s `call`. Raises DeployError or a transient marker."""
        return self._once(operation, call, args, kwargs)

    # --- internals ------------------------------------------------------------------------------

    def _retrying(
        self, operation: str, attempt: Callable[[], T], look: Callable[[TransientError], T | None] | None = None
    ) -> T:
        def exhausted(exc: TransientError, attempts: int) -> DeployError:
            return DeployError(
                f"{operation}: {exc.detail}, still failing after {attempts} attempts; "
                "DigitalOcean may be degraded (https://status.digitalocean.com), run again later",
                platform=PLATFORM,
                operation=operation,
            )

        return call_with_retries(operation, attempt, self.policy, on_exhausted=exhausted, look=look, sleep=self._sleep)

    def _once(self, operation: str, call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            status, body, headers = call(*args, cls=_capture, **kwargs)
        except ClientAuthenticationError as exc:
            raise self._token_rejected(operation, 401, _message(exc)) from None
        except HttpResponseError as exc:
            response: Any = exc.response
            status = exc.status_code or 0
            headers = response.headers if response is not None else {}
            body = _json_body(response)
        except ServiceRequestError as exc:
            # The request never reached the server (connection refused, DNS, connect timeout).
            raise TransientError(f"could not connect ({_short(exc)})", ambiguous=False) from exc
        except ServiceResponseError as exc:
            # Sent, but the answer was lost (read timeout, reset): the server may have acted on it.
            raise TransientError(f"no answer ({_short(exc)})", ambiguous=True) from exc
        return self._judge(operation, status, body, headers)

    def _judge(self, operation: str, status: int, body: Any, headers: Any) -> Any:
        if 200 <= status < 300:
            return body
        message = _do_message(body)
        if status in (401, 403):
            raise self._token_rejected(operation, status, message)
        if status == 404:
            raise NotFoundError(f"{operation}: not found (HTTP 404: {message})", platform=PLATFORM, operation=operation)
        if status == 429:
            raise rate_limited(
                headers,
                self.policy,
                f"rate limited (HTTP 429: {message})",
                too_long=lambda why: DeployError(
                    f"{operation}: rate limited by DigitalOcean (HTTP 429: {message}); {why}",
                    platform=PLATFORM,
                    operation=operation,
                ),
            )
        if status == 408 or status >= 500:
            raise TransientError(f"HTTP {status}: {message}", ambiguous=True)
        raise DeployError(f"{operation}: HTTP {status}: {message}", platform=PLATFORM, operation=operation)

    def _token_rejected(self, operation: str, status: int, message: str) -> DeployError:
        return DeployError(
            f"{operation}: DigitalOcean rejected the API token (HTTP {status}: {message}). Check that "
            f"${self._token_name} holds a valid, unexpired token with read and update access to App Platform.",
            platform=PLATFORM,
            operation=operation,
        )


def _json_body(response: Any) -> Any:
    if response is None:
        return None
    try:
        return response.json()
    except Exception:
        return None


def _do_message(body: Any) -> str:
    """DigitalOcean's `{"id": ..., "message": ...}` error body as one line, secrets masked."""
    text = str(body.get("message") or body.get("id") or "no message") if isinstance(body, dict) else "no message"
    return redact(text.replace("\n", " ")[:300])


def _message(exc: HttpResponseError) -> str:
    return _do_message(_json_body(exc.response))


def _short(exc: Exception) -> str:
    return redact(str(exc).splitlines()[0][:200]) if str(exc) else type(exc).__name__
