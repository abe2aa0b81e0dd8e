"""The documents GitHub's REST API answers with, field for field as api.github.com sends them:
users, Deployments, deployment statuses, issue comments, errors, and the headers on every answer."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

__all__ = ["comment", "deployment", "error", "invalid", "now", "page", "rate_headers", "request_id", "status", "user"]

WEB = "https://github.com"
DOCS = "https://docs.github.com/rest"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(prefix: str, number: int) -> str:
    return f"{prefix}_kwDO{base64.b64encode(number.to_bytes(8, 'big')).decode().rstrip('=')}"


def user(api: str, login: str, number: int) -> dict[str, Any]:
    """A `simple-user` (a bot's `type` is Bot)."""
    url = f"{api}/users/{login}"
    return {
        "login": login,
        "id": number,
        "node_id": node_id("U", number),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{number}?v=4",
        "gravatar_id": "",
        "url": url,
        "html_url": f"{WEB}/{login}",
        "followers_url": f"{url}/followers",
        "following_url": f"{url}/following{{/other_user}}",
        "gists_url": f"{url}/gists{{/gist_id}}",
        "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{url}/subscriptions",
        "organizations_url": f"{url}/orgs",
        "repos_url": f"{url}/repos",
        "events_url": f"{url}/events{{/privacy}}",
        "received_events_url": f"{url}/received_events",
        "type": "Bot" if login.endswith("[bot]") else "User",
        "user_view_type": "public",
        "site_admin": False,
    }


def deployment(repo_url: str, number: int, sha: str, body: dict[str, Any], creator: dict[str, Any]) -> dict[str, Any]:
    environment = body.get("environment") or "production"
    url = f"{repo_url}/deployments/{number}"
    stamp = now()
    return {
        "url": url,
        "id": number,
        "node_id": node_id("DE", number),
        "sha": sha,
        "ref": body["ref"],
        "task": body.get("task") or "deploy",
        "payload": body.get("payload") if body.get("payload") is not None else {},
        "original_environment": environment,
        "environment": environment,
        "description": body.get("description") or "",
        "creator": creator,
        "created_at": stamp,
        "updated_at": stamp,
        "statuses_url": f"{url}/statuses",
        "repository_url": repo_url,
        "transient_environment": bool(body.get("transient_environment", False)),
        "production_environment": bool(body.get("production_environment", environment == "production")),
        "performed_via_github_app": None,
    }


def status(
    repo_url: str, number: int, of: dict[str, Any], state: str, body: dict[str, Any], creator: dict[str, Any]
) -> dict[str, Any]:
    stamp = now()
    log_url = body.get("log_url") or body.get("target_url") or ""
    return {
        "url": f"{of['url']}/statuses/{number}",
        "id": number,
        "node_id": node_id("DES", number),
        "state": state,
        "creator": creator,
        "description": body.get("description") or "",
        "environment": body.get("environment") or of["environment"],
        "target_url": log_url,
        "created_at": stamp,
        "updated_at": stamp,
        "deployment_url": of["url"],
        "repository_url": repo_url,
        "environment_url": body.get("environment_url") or "",
        "log_url": log_url,
        "performed_via_github_app": None,
    }


def comment(
    repo_url: str, repository: str, issue: int, number: int, text: str, author: dict[str, Any]
) -> dict[str, Any]:
    stamp = now()
    return {
        "id": number,
        "node_id": node_id("IC", number),
        "url": f"{repo_url}/issues/comments/{number}",
        "html_url": f"{WEB}/{repository}/pull/{issue}#issuecomment-{number}",
        "body": text,
        "user": author,
        "created_at": stamp,
        "updated_at": stamp,
        "issue_url": f"{repo_url}/issues/{issue}",
        "author_association": "NONE" if author["type"] == "Bot" else "MEMBER",
        "performed_via_github_app": None,
    }


def error(message: str, page: str = "", **extra: Any) -> dict[str, Any]:
    return {"message": message, "documentation_url": f"{DOCS}{page}", **extra}


def request_id() -> str:
    """`X-GitHub-Request-Id`: what GitHub Support asks for."""
    raw = uuid.uuid4().hex.upper()
    return f"{raw[0:4]}:{raw[4:10]}:{raw[10:17]}:{raw[17:24]}:{raw[24:32]}"


def rate_headers(limit: int, remaining: int, reset: int, resource: str = "core") -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": str(reset),
        "x-ratelimit-used": str(limit - remaining),
        "x-ratelimit-resource": resource,
    }


def next_reset(window: float = 3600.0) -> int:
    return int(time.time() + window)


def invalid(resource: str, field_name: str, code: str) -> dict[str, Any]:
    """GitHub's 422 Validation Failed, naming the field."""
    return error("Validation Failed", errors=[{"resource": resource, "field": field_name, "code": code}])


def page(base: str, path: str, query: dict[str, str], items: list[dict[str, Any]]) -> tuple[int, Any, dict[str, str]]:
    """One page of a list as GitHub serves it: `per_page` (default 30, at most 100), `page`, and
    `Link` headers naming the next, last, first and previous pages."""
    per_page = min(100, max(1, int(query.get("per_page") or 30)))
    number = max(1, int(query.get("page") or 1))
    last = max(1, -(-len(items) // per_page))
    chunk = items[(number - 1) * per_page : number * per_page]
    links = []

    def link(n: int, rel: str) -> str:
        return f'<{base}{path}?{urlencode({**query, "page": n, "per_page": per_page})}>; rel="{rel}"'

    if number < last:
        links += [link(number + 1, "next"), link(last, "last")]
    if number > 1:
        links += [link(1, "first"), link(number - 1, "prev")]
    return 200, chunk, ({"Link": ", ".join(links)} if links else {})
