"""The REST exchange with one GitHub repository: auth, retries, rate limits, pagination, errors.

`orchestrator.github` says what to do on GitHub (Deployments, a sticky PR comment); this module
says how one call travels. Retries run through `orchestrator.http_retry`, bounded by
`RetryPolicy`: 5xx and no-answer with exponential backoff; 403/429 rate limits after `Retry-After`
or `x-ratelimit-reset`, giving up at once when GitHub asks for longer than the budget. A POST that
creates something is never sent twice blindly: after an ambiguous failure (5xx or no answer) the
caller's `look` searches for what it would have created first.

The token is a `Secret`, revealed only into the Authorization header; errors carry GitHub's own
`message` (and what its `errors` name), redacted, never headers or request bodies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests

from orchestrator import http_retry
from orchestrator.errors import OrchestratorError
from orchestrator.http_retry import TransientError, call_with_retries, retry_after_seconds
from orchestrator.redaction import Secret, redact

__all__ = ["API_VERSION", "GitHubApi", "GitHubError", "RetryPolicy", "github_message", "int_field", "json_body"]

API_VERSION = "2022-11-28"
_MAX_PAGES = 50
_PERMISSION = {"deployment": "deployments: write", "comment": "pull-requests: write"}

T = TypeVar("T")


class GitHubError(OrchestratorError):
    """A GitHub API call failed. Non-fatal by contract: run side effects through `GitHubUpdates`."""

    step = "github"

    def __init__(self, message: str, *, call: str, status: int | None = None, unavailable: bool = False) -> None:
        super().__init__(message)
        self.call = call
        self.status = status
        self.unavailable = unavailable
        """GitHub cannot serve this run (unreachable, rate-limited past the budget, token refused)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy(http_retry.RetryPolicy):
    """3 retries within 30 s, backoff from 0.5 s up to 8 s."""

    budget_seconds: float | None = 30.0
    rate_limit_default: float = 60.0
    """Wait for a rate limit that names no time: GitHub's docs say at least a minute."""


class _Retry(TransientError):
    """One attempt failed in a way worth another; `ambiguous`: a POST may have taken effect."""

    def __init__(self, message: str, *, status: int | None, ambiguous: bool, retry_after: float | None = None) -> None:
        super().__init__(message, ambiguous=ambiguous, retry_after=retry_after)
        self.status = status


class GitHubApi:
    """Calls on one repository of one GitHub API (github.com or GHES), authenticated by a token.

    `call` names the operation in every error (e.g. "create deployment"); calls with "comment" in
    the name are refused for want of `pull-requests: write`, the others of `deployments: write`.
    """

    def __init__(
        self,
        api_url: str,
        repository: str,
        token: Secret,
        *,
        timeout: float,
        retry: RetryPolicy,
        session: requests.Session | None,
        sleep: Callable[[float], None],
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.repository = repository
        self.repo_url = f"{self.api_url}/repos/{repository}"
        self._token = token
        self._timeout = timeout
        self._policy = retry
        self._session = session or requests.Session()
        self._sleep = sleep

    def close(self) -> None:
        self._session.close()

    def get(self, call: str, url: str, params: Mapping[str, str] | None, *, retry: bool) -> requests.Response:
        """A 2xx answer to a GET, retried if `retry`. Raises GitHubError."""
        if retry:
            return self.retrying(call, lambda: self._send(call, "GET", url, params=params))
        return self._send(call, "GET", url, params=params)

    def pages(self, call: str, url: str, query: Mapping[str, str], *, retry: bool) -> list[dict[str, Any]]:
        """Every item of a paginated list, following `Link: rel="next"` on this API's origin only."""
        items: list[dict[str, Any]] = []
        next_url: str | None = url
        params: Mapping[str, str] | None = query
        for _ in range(_MAX_PAGES):
            if next_url is None:
                break
            response = self.get(call, next_url, params, retry=retry)
            page = json_body(response, call)
            if not isinstance(page, list):
                raise GitHubError(f"GitHub {call}: expected a list, got {type(page).__name__}", call=call)
            items.extend(p for p in page if isinstance(p, dict))
            link = response.links.get("next", {}).get("url")
            # The token goes wherever we follow: never off the API's own origin.
            next_url = link if link and _same_origin(link, self.api_url) else None
            params = None
        return items

    def create(
        self,
        call: str,
        url: str,
        body: dict[str, Any],
        look: Callable[[], T | None],
        parse: Callable[[requests.Response], T],
    ) -> T:
        """POST once per attempt; after an ambiguous failure, `look` for the effect before re-sending."""
        return self.retrying(
            call, lambda: parse(self._send(call, "POST", url, body=body)), look=lambda _failure: look()
        )

    def edit(self, call: str, url: str, body: dict[str, Any]) -> requests.Response:
        """PATCH, retried (an edit sent twice leaves the same result). Raises GitHubError."""
        return self.retrying(call, lambda: self._send(call, "PATCH", url, body=body))

    def retrying(
        self, call: str, attempt: Callable[[], T], *, look: Callable[[TransientError], T | None] | None = None
    ) -> T:
        budget = self._policy.budget_seconds

        def exhausted(exc: TransientError, tries: int) -> GitHubError:
            detail = f"{exc}; gave up after {tries} attempt(s)"
            if exc.retry_after is not None and budget is not None and exc.retry_after > budget:
                detail += f" (GitHub asked to wait {exc.retry_after:.0f} s, beyond the {budget:.0f} s budget)"
            status = exc.status if isinstance(exc, _Retry) else None
            return GitHubError(detail, call=call, status=status, unavailable=True)

        return call_with_retries(call, attempt, self._policy, on_exhausted=exhausted, look=look, sleep=self._sleep)

    def _send(
        self,
        call: str,
        method: str,
        url: str,
        *,
        body: dict[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One exchange. Returns a 2xx response; raises `_Retry` or a final GitHubError."""
        headers = {
            "Authorization": f"Bearer {self._token.reveal()}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "deploy-orchestrator",
        }
        try:
            response = self._session.request(
                method, url, json=body, params=params, headers=headers, timeout=self._timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            # Only the type: the exception text can quote the request.
            host = urlsplit(self.api_url).netloc
            no_answer = f"GitHub {call}: no answer from {host} ({type(exc).__name__})"
            raise _Retry(no_answer, status=None, ambiguous=True) from None
        status = response.status_code
        if 200 <= status < 300:
            return response
        said = github_message(response)
        where = f"GitHub {call} ({method} {urlsplit(url).path}): {status}"
        if status >= 500:
            raise _Retry(f"{where} {said}".rstrip(), status=status, ambiguous=True)
        wait = _rate_limit_wait(response, said, self._policy.rate_limit_default)
        if wait is not None:
            raise _Retry(f"{where} rate limited", status=status, ambiguous=False, retry_after=wait)
        if status == 401:
            raise GitHubError(
                f"{where} {said}: the github-token was refused; pass a valid token (usually secrets.GITHUB_TOKEN)",
                call=call,
                status=status,
                unavailable=True,
            )
        if status in (403, 404):
            permission = _PERMISSION["comment" if "comment" in call else "deployment"]
            raise GitHubError(
                f"{where} {said}: the token cannot do this in {self.repository}; grant the workflow "
                f"`permissions: {permission}` (fork PRs get a read-only token)",
                call=call,
                status=status,
            )
        raise GitHubError(f"{where} {said}".rstrip(), call=call, status=status)


def github_message(response: requests.Response) -> str:
    """GitHub's `message`, plus what its `errors` name: the invalid fields of a 422, the failing status
    contexts of a 409. Redacted; empty when the answer is not a JSON object."""
    try:
        document = response.json()
        said = document.get("message")
        errors = document.get("errors")
    except (ValueError, AttributeError):
        return ""
    details = [_error_detail(e) for e in errors if isinstance(e, Mapping)] if isinstance(errors, list) else []
    text = " ".join(filter(None, [str(said) if said else "", "; ".join(filter(None, details))]))
    return redact(text[:300])


def json_body(response: requests.Response, call: str) -> Any:
    """The answer's JSON document; raises GitHubError when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        raise GitHubError(f"GitHub {call}: the answer is not JSON", call=call, status=response.status_code) from None


def int_field(response: requests.Response, name: str, call: str) -> int:
    """The integer `name` of the answer's JSON object; raises GitHubError when it has none."""
    body = json_body(response, call)
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, int):
        said = body.get("message") if isinstance(body, dict) else None
        raise GitHubError(
            f"GitHub {call}: {response.status_code} without an {name}" + (f" ({redact(str(said))})" if said else ""),
            call=call,
            status=response.status_code,
        )
    return value


def _error_detail(entry: Mapping[str, Any]) -> str:
    contexts = entry.get("contexts")
    if isinstance(contexts, list):
        failing = [f"{c.get('context')}={c.get('state')}" for c in contexts if isinstance(c, Mapping)]
        failing = [f for f in failing if not f.endswith("=success")]
        return f"failing contexts: {', '.join(failing)}" if failing else ""
    if entry.get("field"):
        return f"{entry['field']}: {entry.get('message') or entry.get('code') or 'invalid'}"
    return str(entry.get("message") or "")


def _rate_limit_wait(response: requests.Response, said: str, default: float) -> float | None:
    """Seconds to wait when a 403/429 is a rate limit, None when it is a plain refusal."""
    if response.status_code not in (403, 429):
        return None
    retry_after = retry_after_seconds(response.headers)
    if retry_after is not None:
        return retry_after
    reset = response.headers.get("x-ratelimit-reset", "").strip()
    if response.headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
        return max(0.0, float(reset) - time.time()) + 1.0
    if response.status_code == 429 or "rate limit" in said.lower():
        return default
    return None


def _same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)
