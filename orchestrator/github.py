"""A small GitHub REST client: Deployments with their statuses, and one sticky PR comment.

GitHub only mirrors what a run did; it never decides it. So every call here raises
`GitHubError` and callers run them through `github_updates.GitHubUpdates`, which logs the failure
and goes on (and stops calling a GitHub that is unreachable, rate-limited past the budget, or
refusing the token, so one outage costs one retry budget, not one per call).

Retries (`orchestrator.http_retry`, bounded by `RetryPolicy`): 5xx and no-answer with exponential
backoff; 403/429 rate limits after `Retry-After` or `x-ratelimit-reset`, giving up at once when
GitHub asks for longer than the budget. A POST that creates something is never sent twice blindly:
after an ambiguous failure (5xx or no answer) we look for what it would have created first.

The token is a `Secret`, revealed only into the Authorization header; messages carry GitHub's
own `message` field, redacted, never headers or request bodies.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

import requests

from orchestrator import http_retry
from orchestrator.errors import OrchestratorError
from orchestrator.http_retry import TransientError, call_with_retries, retry_after_seconds
from orchestrator.redaction import Secret, mask_url, redact

__all__ = [
    "DEFAULT_API_URL",
    "DeploymentState",
    "GitHubClient",
    "GitHubError",
    "LogSink",
    "RetryPolicy",
    "marker_tag",
]

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
DeploymentState = Literal["error", "failure", "inactive", "in_progress", "queued", "pending", "success"]

_DESCRIPTION_MAX = 140
_COMMENT_MAX = 65_000  # GitHub refuses bodies over 65,536 characters.
_MAX_PAGES = 50
_NONCE_KEY = "deploy_orchestrator_request"
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_MARKER = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
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


class _Retry(TransientError):
    """One attempt failed in a way worth another; `ambiguous`: a POST may have taken effect."""

    def __init__(self, message: str, *, status: int | None, ambiguous: bool, retry_after: float | None = None) -> None:
        super().__init__(message, ambiguous=ambiguous, retry_after=retry_after)
        self.status = status


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy(http_retry.RetryPolicy):
    """3 retries within 30 s, backoff from 0.5 s up to 8 s."""

    budget_seconds: float | None = 30.0
    rate_limit_default: float = 60.0
    """Wait for a rate limit that names no time: GitHub's docs say at least a minute."""


class LogSink(Protocol):
    """What `RunLog` offers; the module logger stands in when none is given."""

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...


class GitHubClient:
    """One repository on one GitHub API (github.com or GHES), authenticated by a token."""

    def __init__(
        self,
        api_url: str,
        repository: str,
        token: Secret,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.repository = repository
        self._repo_path = f"/repos/{repository}"
        self._token = token
        self._timeout = timeout
        self._policy = retry
        self._session = session or requests.Session()
        self._sleep = sleep

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], token: Secret | None, *, log_to: LogSink | None = None, **options: Any
    ) -> GitHubClient | None:
        """The client for this run, or None (after one info line) when there is no token or repository."""
        repository = (env.get("GITHUB_REPOSITORY") or "").strip()
        reason = None
        if token is None or not token:
            reason = "no github-token input"
        elif not _REPOSITORY.match(repository):
            reason = "GITHUB_REPOSITORY is not set to owner/name"
        api_url = (env.get("GITHUB_API_URL") or DEFAULT_API_URL).strip()
        if reason is None and urlsplit(api_url).scheme not in ("http", "https"):
            reason = f"GITHUB_API_URL {api_url!r} is not an http(s) URL"
        if reason is not None or token is None:
            _info(log_to, f"GitHub: {reason}; Deployments and PR comments are skipped")
            return None
        return cls(api_url, repository, token, **options)

    def close(self) -> None:
        self._session.close()

    # --- Deployments ------------------------------------------------------------------------------

    def create_deployment(
        self,
        ref: str,
        environment: str,
        *,
        transient: bool,
        production: bool,
        description: str,
        payload: dict[str, Any],
    ) -> int:
        """Create a Deployment of `ref` (an exact sha: no auto-merge, no required status checks).

        Returns its id. After an ambiguous failure it looks up the deployment this call tagged
        (a nonce in `payload`) before sending again, so at most one is created. Raises GitHubError.
        """
        nonce = uuid.uuid4().hex
        body = {
            "ref": ref,
            "environment": environment,
            "transient_environment": transient,
            "production_environment": production,
            "auto_merge": False,
            "required_contexts": [],
            "description": _cut(redact(description), _DESCRIPTION_MAX),
            "payload": {**_clean(payload), _NONCE_KEY: nonce},
        }
        url = f"{self.api_url}{self._repo_path}/deployments"

        def look() -> int | None:
            query = {"ref": ref, "environment": environment, "per_page": "100"}
            for deployment in self._pages("create deployment", url, query, retry=False):
                if _payload(deployment).get(_NONCE_KEY) == nonce:
                    return int(deployment["id"])
            return None

        return self._create("create deployment", url, body, look, lambda r: _created_deployment(r, ref))

    def set_status(
        self,
        deployment_id: int,
        state: DeploymentState,
        *,
        environment_url: str | None,
        log_url: str | None,
        description: str,
        auto_inactive: bool = True,
    ) -> None:
        """Add a status to a Deployment (`description` cut to GitHub's 140 characters). Raises GitHubError."""
        text = _cut(redact(description), _DESCRIPTION_MAX)
        body: dict[str, Any] = {"state": state, "description": text, "auto_inactive": auto_inactive}
        if environment_url:
            body["environment_url"] = mask_url(environment_url)
        if log_url:
            body["log_url"] = mask_url(log_url)
        url = f"{self.api_url}{self._repo_path}/deployments/{deployment_id}/statuses"

        def look() -> bool | None:
            newest = self._newest_status(deployment_id, retry=False)
            matches = newest is not None and newest.get("state") == state and newest.get("description") == text
            return True if matches else None

        self._create("set deployment status", url, body, look, lambda _r: True)

    def find_deployments(self, environment: str) -> list[int]:
        """Ids of every Deployment to `environment`, newest first. Raises GitHubError."""
        url = f"{self.api_url}{self._repo_path}/deployments"
        query = {"environment": environment, "per_page": "100"}
        return [int(d["id"]) for d in self._pages("list deployments", url, query, retry=True)]

    def deployment_state(self, deployment_id: int) -> str | None:
        """The newest status's state of a Deployment, None when it has none. Raises GitHubError."""
        newest = self._newest_status(deployment_id, retry=True)
        return str(newest["state"]) if newest else None

    # --- the sticky PR comment --------------------------------------------------------------------

    def upsert_comment(self, pr_number: int, marker: str, body: str) -> int:
        """Edit this tool's comment tagged `marker` on the PR, or create it. Returns the comment id.

        The tag is a hidden HTML comment on the first line; the comment is found across every page
        of the PR's comments. Raises GitHubError (ValueError for a marker that could break the tag).
        """
        tag = marker_tag(marker)
        text = _cut(tag + "\n" + redact(body), _COMMENT_MAX)
        existing = self._find_comment(pr_number, tag, retry=True)
        if existing is not None:
            url = f"{self.api_url}{self._repo_path}/issues/comments/{existing}"
            self._retrying("edit PR comment", lambda: self._send("edit PR comment", "PATCH", url, body={"body": text}))
            return existing
        url = f"{self.api_url}{self._repo_path}/issues/{pr_number}/comments"
        return self._create(
            "create PR comment",
            url,
            {"body": text},
            lambda: self._find_comment(pr_number, tag, retry=False),
            lambda r: _int_field(r, "id", "create PR comment"),
        )

    def _find_comment(self, pr_number: int, tag: str, *, retry: bool) -> int | None:
        url = f"{self.api_url}{self._repo_path}/issues/{pr_number}/comments"
        for comment in self._pages("list PR comments", url, {"per_page": "100"}, retry=retry):
            if tag in str(comment.get("body") or ""):
                return int(comment["id"])
        return None

    def _newest_status(self, deployment_id: int, *, retry: bool) -> dict[str, Any] | None:
        url = f"{self.api_url}{self._repo_path}/deployments/{deployment_id}/statuses"
        call = "list deployment statuses"
        response = self._get(call, url, {"per_page": "1"}, retry=retry)
        statuses = _json(response, call)
        return dict(statuses[0]) if isinstance(statuses, list) and statuses else None

    # --- transport --------------------------------------------------------------------------------

    def _pages(self, call: str, url: str, query: Mapping[str, str], *, retry: bool) -> list[dict[str, Any]]:
        """Every item of a paginated list, following `Link: rel="next"` on this API's origin only."""
        items: list[dict[str, Any]] = []
        next_url: str | None = url
        params: Mapping[str, str] | None = query
        for _ in range(_MAX_PAGES):
            if next_url is None:
                break
            response = self._get(call, next_url, params, retry=retry)
            page = _json(response, call)
            if not isinstance(page, list):
                raise GitHubError(f"GitHub {call}: expected a list, got {type(page).__name__}", call=call)
            items.extend(p for p in page if isinstance(p, dict))
            link = response.links.get("next", {}).get("url")
            # The token goes wherever we follow: never off the API's own origin.
            next_url = link if link and _same_origin(link, self.api_url) else None
            params = None
        return items

    def _get(self, call: str, url: str, params: Mapping[str, str] | None, *, retry: bool) -> requests.Response:
        if retry:
            return self._retrying(call, lambda: self._send(call, "GET", url, params=params))
        return self._send(call, "GET", url, params=params)

    def _create(
        self,
        call: str,
        url: str,
        body: dict[str, Any],
        look: Callable[[], T | None],
        parse: Callable[[requests.Response], T],
    ) -> T:
        """POST once per attempt; after an ambiguous failure, `look` for the effect before re-sending."""
        return self._retrying(
            call, lambda: parse(self._send(call, "POST", url, body=body)), look=lambda _failure: look()
        )

    def _retrying(
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
        said = _message(response)
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


def marker_tag(marker: str) -> str:
    """The hidden first line that identifies this tool's sticky comment."""
    if not _MARKER.match(marker):
        raise ValueError(f"comment marker {marker!r}: use 1-64 letters, digits, '.', '_', ':' or '-'")
    return f"<!-- deploy-orchestrator:{marker} -->"


# --- helpers --------------------------------------------------------------------------------------


def _info(sink: LogSink | None, message: str) -> None:
    if sink is None:
        log.info(redact(message))
    else:
        sink.info(message)


def _clean(value: Any) -> Any:
    """`value` with every registered secret masked in its strings: GitHub shows payloads to readers."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _message(response: requests.Response) -> str:
    """GitHub's `message`, plus what its `errors` name: the invalid fields of a 422, the failing status
    contexts of a 409."""
    try:
        document = response.json()
        said = document.get("message")
        errors = document.get("errors")
    except (ValueError, AttributeError):
        return ""
    details = [_error_detail(e) for e in errors if isinstance(e, Mapping)] if isinstance(errors, list) else []
    text = " ".join(filter(None, [str(said) if said else "", "; ".join(filter(None, details))]))
    return redact(text[:300])


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


def _json(response: requests.Response, call: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise GitHubError(f"GitHub {call}: the answer is not JSON", call=call, status=response.status_code) from None


def _int_field(response: requests.Response, name: str, call: str) -> int:
    body = _json(response, call)
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, int):
        said = body.get("message") if isinstance(body, dict) else None
        raise GitHubError(
            f"GitHub {call}: {response.status_code} without an {name}" + (f" ({redact(str(said))})" if said else ""),
            call=call,
            status=response.status_code,
        )
    return value


def _created_deployment(response: requests.Response, ref: str) -> int:
    if response.status_code == 202:
        # 202 means GitHub merged the default branch into `ref` and created nothing (auto_merge).
        raise GitHubError(
            f"GitHub create deployment: 202 {_message(response)}: no Deployment was created; deploy an exact "
            f"commit sha rather than the branch {ref}",
            call="create deployment",
            status=202,
        )
    return _int_field(response, "id", "create deployment")


def _payload(deployment: Mapping[str, Any]) -> dict[str, Any]:
    payload = deployment.get("payload")
    if isinstance(payload, str):
        # GitHub hands back a payload given as a string as that string.
        try:
            payload = json.loads(payload)
        except ValueError:
            return {}
    return payload if isinstance(payload, dict) else {}


def _same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)
