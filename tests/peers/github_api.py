"""A real, stateful GitHub REST API on 127.0.0.1: Deployments, their statuses, and issue comments.

It checks what GitHub checks that matters to us (the bearer token → 401, the API version header
→ 400, one repository → 404, status states and the 140-character description → 422), paginates
with `Link` headers like GitHub (default 30 per page, at most 100), applies `auto_inactive`, and
has fault switches: fail before handling (500, 403 secondary rate limit with Retry-After, a
dropped connection) or *after* handling (the change is made, the client sees a failure: the
ambiguous case a create must survive without creating twice).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

API_VERSION = "2022-11-28"
STATES = frozenset({"error", "failure", "inactive", "in_progress", "queued", "pending", "success"})
SECONDARY_RATE_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID."
)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Fault:
    method: str
    path: str
    """A regular expression the request path must match in full."""
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=lambda: {"message": "Server Error"})
    after: bool = False
    """Handle the request for real first, then answer with the fault (the change stays made)."""
    drop: bool = False
    """Close the connection without answering."""
    times: int = 1


class _Reply(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GitHubApiPeer:
    """`peer = GitHubApiPeer(token="...")`; point a client at `peer.url`; inspect `peer.deployments`."""

    def __init__(self, *, token: str, repository: str = "acme/shop", bot: str = "github-actions[bot]") -> None:
        self.token = token
        self.repository = repository
        self.bot = bot
        self.deployments: dict[int, dict[str, Any]] = {}
        self.statuses: dict[int, list[dict[str, Any]]] = {}
        """Per deployment, oldest first."""
        self.comments: dict[int, list[dict[str, Any]]] = {}
        """Per issue, oldest first."""
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self._ids = itertools.count(1000)
        self._lock = threading.RLock()
        peer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                peer._serve(self)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    # --- test controls --------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def add_comment(self, issue: int, body: str, *, user: str = "a-reviewer") -> int:
        with self._lock:
            return self._new_comment(issue, body, user)["id"]

    def requests(self, method: str, pattern: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == method and re.fullmatch(pattern, s.path)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- the server -----------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self.seen.append(Seen(handler.command, parts.path, query, headers, body))
            fault = self._take_fault(handler.command, parts.path)
        if fault is not None and not fault.after:
            self._answer(handler, fault)
            return
        try:
            with self._lock:
                status, payload, extra = self._handle(handler.command, parts.path, query, headers, body)
        except _Reply as reply:
            status, payload, extra = reply.status, reply.body, reply.headers
        if fault is not None:
            self._answer(handler, fault)
            return
        self._send(handler, status, payload, extra)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and re.fullmatch(fault.path, path):
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _answer(self, handler: BaseHTTPRequestHandler, fault: Fault) -> None:
        if fault.drop:
            handler.close_connection = True
            return
        self._send(handler, fault.status, fault.body, fault.headers)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if headers.get("authorization") != f"Bearer {self.token}":
            raise _Reply(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
        if headers.get("x-github-api-version", API_VERSION) != API_VERSION:
            raise _Reply(400, {"message": f"Unsupported API version {headers['x-github-api-version']}"})
        prefix = f"/repos/{self.repository}"
        if not path.startswith(prefix + "/"):
            raise _Reply(404, {"message": "Not Found"})
        rest = path[len(prefix) :]
        routes: list[tuple[str, str, Any]] = [
            ("GET", r"/deployments", self._list_deployments),
            ("POST", r"/deployments", self._create_deployment),
            ("GET", r"/deployments/(\d+)", self._get_deployment),
            ("GET", r"/deployments/(\d+)/statuses", self._list_statuses),
            ("POST", r"/deployments/(\d+)/statuses", self._create_status),
            ("GET", r"/issues/(\d+)/comments", self._list_comments),
            ("POST", r"/issues/(\d+)/comments", self._create_comment),
            ("PATCH", r"/issues/comments/(\d+)", self._edit_comment),
        ]
        for route_method, pattern, action in routes:
            match = re.fullmatch(pattern, rest)
            if match and route_method == method:
                result: tuple[int, Any, dict[str, str]] = action(path, query, body, *map(int, match.groups()))
                return result
        raise _Reply(404, {"message": "Not Found"})

    # --- deployments --------------------------------------------------------------------------------

    def _create_deployment(self, path: str, query: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or not isinstance(body.get("ref"), str) or not body["ref"]:
            raise _Reply(422, {"message": 'Invalid request.\n\n"ref" wasn\'t supplied.'})
        ref = body["ref"]
        sha = ref if re.fullmatch(r"[0-9a-f]{40}", ref) else hashlib.sha1(ref.encode()).hexdigest()
        environment = body.get("environment") or "production"
        deployment_id = next(self._ids)
        deployment = {
            "id": deployment_id,
            "url": f"{self.url}/repos/{self.repository}/deployments/{deployment_id}",
            "sha": sha,
            "ref": ref,
            "task": body.get("task") or "deploy",
            "payload": body.get("payload") or {},
            "environment": environment,
            "original_environment": environment,
            "description": body.get("description"),
            "creator": {"login": self.bot, "type": "Bot"},
            "created_at": _now(),
            "updated_at": _now(),
            "transient_environment": bool(body.get("transient_environment", False)),
            "production_environment": bool(body.get("production_environment", environment == "production")),
            "auto_merge": body.get("auto_merge", True),
            "required_contexts": body.get("required_contexts"),
        }
        self.deployments[deployment_id] = deployment
        self.statuses[deployment_id] = []
        return 201, deployment, {}

    def _list_deployments(self, path: str, query: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        chosen = [
            d
            for d in sorted(self.deployments.values(), key=lambda d: d["id"], reverse=True)
            if all(query.get(k) in (None, d[k]) for k in ("ref", "sha", "environment", "task"))
        ]
        return self._page(path, query, chosen)

    def _get_deployment(
        self, path: str, query: dict[str, str], body: Any, deployment_id: int
    ) -> tuple[int, Any, dict[str, str]]:
        return 200, self._deployment(deployment_id), {}

    def _deployment(self, deployment_id: int) -> dict[str, Any]:
        if deployment_id not in self.deployments:
            raise _Reply(404, {"message": "Not Found"})
        return self.deployments[deployment_id]

    def _list_statuses(
        self, path: str, query: dict[str, str], body: Any, deployment_id: int
    ) -> tuple[int, Any, dict[str, str]]:
        self._deployment(deployment_id)
        return self._page(path, query, list(reversed(self.statuses[deployment_id])))

    def _create_status(
        self, path: str, query: dict[str, str], body: Any, deployment_id: int
    ) -> tuple[int, Any, dict[str, str]]:
        deployment = self._deployment(deployment_id)
        if not isinstance(body, dict) or body.get("state") not in STATES:
            raise _Reply(422, {"message": "Validation Failed", "errors": [{"field": "state", "code": "invalid"}]})
        description = body.get("description") or ""
        if len(description) > 140:
            raise _Reply(
                422, {"message": "Validation Failed", "errors": [{"field": "description", "code": "too_long"}]}
            )
        status = self._add_status(deployment, body["state"], description, body)
        if body["state"] == "success" and body.get("auto_inactive", True):
            # GitHub: prior non-transient, non-production deployments to the same environment that
            # had succeeded get an inactive status.
            for other in self.deployments.values():
                if (
                    other["id"] != deployment_id
                    and other["environment"] == deployment["environment"]
                    and not other["transient_environment"]
                    and not other["production_environment"]
                    and self.statuses[other["id"]]
                    and self.statuses[other["id"]][-1]["state"] == "success"
                ):
                    self._add_status(other, "inactive", "", {})
        return 201, status, {}

    def _add_status(
        self, deployment: dict[str, Any], state: str, description: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        status = {
            "id": next(self._ids),
            "state": state,
            "description": description,
            "environment": deployment["environment"],
            "environment_url": body.get("environment_url", ""),
            "log_url": body.get("log_url", ""),
            "target_url": body.get("log_url", ""),
            "creator": {"login": self.bot, "type": "Bot"},
            "created_at": _now(),
            "deployment_url": deployment["url"],
        }
        self.statuses[deployment["id"]].append(status)
        return status

    # --- issue comments -----------------------------------------------------------------------------

    def _list_comments(
        self, path: str, query: dict[str, str], body: Any, issue: int
    ) -> tuple[int, Any, dict[str, str]]:
        return self._page(path, query, list(self.comments.get(issue, [])))

    def _create_comment(
        self, path: str, query: dict[str, str], body: Any, issue: int
    ) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or not isinstance(body.get("body"), str) or not body["body"]:
            raise _Reply(422, {"message": "Validation Failed", "errors": [{"field": "body", "code": "missing"}]})
        if len(body["body"]) > 65536:
            raise _Reply(422, {"message": "Validation Failed", "errors": [{"field": "body", "code": "too_long"}]})
        return 201, self._new_comment(issue, body["body"], self.bot), {}

    def _new_comment(self, issue: int, text: str, user: str) -> dict[str, Any]:
        comment_id = next(self._ids)
        comment = {
            "id": comment_id,
            "body": text,
            "user": {"login": user},
            "created_at": _now(),
            "updated_at": _now(),
            "html_url": f"https://github.com/{self.repository}/pull/{issue}#issuecomment-{comment_id}",
        }
        self.comments.setdefault(issue, []).append(comment)
        return comment

    def _edit_comment(
        self, path: str, query: dict[str, str], body: Any, comment_id: int
    ) -> tuple[int, Any, dict[str, str]]:
        for comments in self.comments.values():
            for comment in comments:
                if comment["id"] == comment_id:
                    if not isinstance(body, dict) or not isinstance(body.get("body"), str):
                        raise _Reply(422, {"message": "Validation Failed"})
                    comment["body"] = body["body"]
                    comment["updated_at"] = _now()
                    return 200, comment, {}
        raise _Reply(404, {"message": "Not Found"})

    # --- pagination ---------------------------------------------------------------------------------

    def _page(self, path: str, query: dict[str, str], items: list[dict[str, Any]]) -> tuple[int, Any, dict[str, str]]:
        per_page = min(100, max(1, int(query.get("per_page") or 30)))
        page = max(1, int(query.get("page") or 1))
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []

        def link(n: int, rel: str) -> str:
            return f'<{self.url}{path}?{urlencode({**query, "page": n, "per_page": per_page})}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        return 200, chunk, ({"Link": ", ".join(links)} if links else {})


def rate_limited(method: str, path: str, *, retry_after: int) -> Fault:
    """GitHub's secondary rate limit: 403 with Retry-After."""
    return Fault(
        method,
        path,
        status=403,
        headers={"Retry-After": str(retry_after), "x-ratelimit-remaining": "4999"},
        body={"message": SECONDARY_RATE_LIMIT, "documentation_url": "https://docs.github.com/rest"},
    )
