"""A small GitHub client: Deployments with their statuses, and one sticky PR comment.

GitHub only mirrors what a run did; it never decides it. So every call here raises
`GitHubError` and callers run them through `github_updates.GitHubUpdates`, which logs the failure
and goes on (and stops calling a GitHub that is unreachable, rate-limited past the budget, or
refusing the token, so one outage costs one retry budget, not one per call).

How a call travels (auth, retries, rate limits, pagination, error texts) is `github_api`'s; here
is what each call means, and for each that creates something, how to find what an ambiguous
failure may already have created, so nothing is created twice. Descriptions, payloads and
comment bodies are redacted before they leave: GitHub shows them to anyone who can read the repo.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import requests

from orchestrator.github_api import GitHubApi, GitHubError, RetryPolicy, github_message, int_field, json_body
from orchestrator.redaction import Secret, mask_url, redact, redact_data

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
DeploymentState = Literal["error", "failure", "inactive", "in_progress", "queued", "pending", "success"]

_DESCRIPTION_MAX = 140
_COMMENT_MAX = 65_000  # GitHub refuses bodies over 65,536 characters.
_NONCE_KEY = "deploy_orchestrator_request"
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_MARKER = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_DEFAULT_RETRY = RetryPolicy()


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
        retry: RetryPolicy = _DEFAULT_RETRY,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._api = GitHubApi(api_url, repository, token, timeout=timeout, retry=retry, session=session, sleep=sleep)
        self.api_url = self._api.api_url
        self.repository = repository

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
        self._api.close()

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
            "payload": {**redact_data(payload), _NONCE_KEY: nonce},
        }
        url = f"{self._api.repo_url}/deployments"

        def look() -> int | None:
            query = {"ref": ref, "environment": environment, "per_page": "100"}
            for deployment in self._api.pages("create deployment", url, query, retry=False):
                if _payload(deployment).get(_NONCE_KEY) == nonce:
                    return int(deployment["id"])
            return None

        return self._api.create("create deployment", url, body, look, lambda r: _created_deployment(r, ref))

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
        url = f"{self._api.repo_url}/deployments/{deployment_id}/statuses"

        def look() -> bool | None:
            newest = self._newest_status(deployment_id, retry=False)
            matches = newest is not None and newest.get("state") == state and newest.get("description") == text
            return True if matches else None

        self._api.create("set deployment status", url, body, look, lambda _r: True)

    def find_deployments(self, environment: str) -> list[int]:
        """Ids of every Deployment to `environment`, newest first. Raises GitHubError."""
        url = f"{self._api.repo_url}/deployments"
        query = {"environment": environment, "per_page": "100"}
        return [int(d["id"]) for d in self._api.pages("list deployments", url, query, retry=True)]

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
            url = f"{self._api.repo_url}/issues/comments/{existing}"
            self._api.edit("edit PR comment", url, {"body": text})
            return existing
        url = f"{self._api.repo_url}/issues/{pr_number}/comments"
        return self._api.create(
            "create PR comment",
            url,
            {"body": text},
            lambda: self._find_comment(pr_number, tag, retry=False),
            lambda r: int_field(r, "id", "create PR comment"),
        )

    def _find_comment(self, pr_number: int, tag: str, *, retry: bool) -> int | None:
        url = f"{self._api.repo_url}/issues/{pr_number}/comments"
        for comment in self._api.pages("list PR comments", url, {"per_page": "100"}, retry=retry):
            if tag in str(comment.get("body") or ""):
                return int(comment["id"])
        return None

    def _newest_status(self, deployment_id: int, *, retry: bool) -> dict[str, Any] | None:
        url = f"{self._api.repo_url}/deployments/{deployment_id}/statuses"
        call = "list deployment statuses"
        response = self._api.get(call, url, {"per_page": "1"}, retry=retry)
        statuses = json_body(response, call)
        return dict(statuses[0]) if isinstance(statuses, list) and statuses else None


def marker_tag(marker: str) -> str:
    """The hidden first line that identifies this tool's sticky comment."""
    if not _MARKER.match(marker):
        raise ValueError(f"comment marker {marker!r}: use 1-64 letters, digits, '.', '_', ':' or '-'")
    return f"<!-- deploy-orchestrator:{marker} -->"


def _info(sink: LogSink | None, message: str) -> None:
    if sink is None:
        log.info(redact(message))
    else:
        sink.info(message)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _created_deployment(response: requests.Response, ref: str) -> int:
    if response.status_code == 202:
        # 202 means GitHub merged the default branch into `ref` and created nothing (auto_merge).
        raise GitHubError(
            f"GitHub create deployment: 202 {github_message(response)}: no Deployment was created; deploy an exact "
            f"commit sha rather than the branch {ref}",
            call="create deployment",
            status=202,
        )
    return int_field(response, "id", "create deployment")


def _payload(deployment: Mapping[str, Any]) -> dict[str, Any]:
    payload = deployment.get("payload")
    if isinstance(payload, str):
        # GitHub hands back a payload given as a string as that string.
        try:
            payload = json.loads(payload)
        except ValueError:
            return {}
    return payload if isinstance(payload, dict) else {}
