"""A real, stateful GitHub REST API on 127.0.0.1: Deployments, their statuses, and issue comments.

Held to GitHub's REST description (`github_contract`), both ways: a request body the description
rejects is answered 422 as GitHub does, and every exchange is checked; problems go to
`violations`, which the fixtures require to be empty. Beyond that it does what GitHub does:
- the bearer token → 401, the API version header → 400, one repository → 404, a status's state
  and 140-character description → 422;
- the repository's commits and branches (`commits`, `branches`): a ref that names neither is
  422 "No ref found", never a made-up sha; a branch behind the default one with `auto_merge`
  (GitHub's default) is merged instead: 202; required status contexts (all of the commit's, unless
  `required_contexts` names some) that are not `success` → 409 with the failing contexts;
- full documents (`github_shapes`), `Location` on 201s, `X-GitHub-Request-Id` and the
  `x-ratelimit-*` headers on every answer; a primary rate limit (`rate_limit` requests, then 403
  with `x-ratelimit-remaining: 0` until the reset);
- `Link` pagination (default 30 per page, at most 100) and `auto_inactive`;
- fault switches: fail before handling (500, 403 secondary rate limit with Retry-After, a dropped
  connection) or *after* handling (the change is made, the client sees a failure: the ambiguous
  case a create must survive without creating twice).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.peers import github_contract, github_shapes
from tests.peers.github_faults import SECONDARY_RATE_LIMIT, Fault, RateLimits, rate_limited
from tests.peers.github_shapes import error

__all__ = ["SECONDARY_RATE_LIMIT", "Fault", "GitHubApiPeer", "Seen", "rate_limited"]

API_VERSION = "2022-11-28"
STATES = frozenset({"error", "failure", "inactive", "in_progress", "queued", "pending", "success"})


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class _Reply(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


class GitHubApiPeer:
    """`peer = GitHubApiPeer(token="...")`; point a client at `peer.url`; inspect `peer.deployments`."""

    def __init__(
        self,
        *,
        token: str,
        repository: str = "acme/shop",
        bot: str = "github-actions[bot]",
        commits: set[str] | frozenset[str] = frozenset(),
        branches: dict[str, str] | None = None,
        rate_limit: int = 5000,
        validate: bool = True,
    ) -> None:
        self.token = token
        self.repository = repository
        self.bot = bot
        self.branches: dict[str, str] = dict(branches or {"main": "c" * 40})
        """Branch -> head commit; the first is the default branch."""
        self.commits: set[str] = set(commits) | set(self.branches.values())
        self.behind: set[str] = set()
        """Branches behind the default one (a deployment with auto_merge merges it in: 202)."""
        self.commit_statuses: dict[str, dict[str, str]] = {}
        """sha -> context -> state (success, failure, pending, error)."""
        self.limits = RateLimits(rate_limit)
        self.validate = validate and github_contract.is_available()
        self.violations: list[str] = []
        self.users: dict[str, dict[str, Any]] = {}
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
        self.repo_url = f"{self.url}/repos/{repository}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    # --- test controls --------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def set_commit_status(self, ref: str, context: str, state: str) -> None:
        """A check on a commit (or a branch's head), as CI would report it."""
        with self._lock:
            sha = self.branches.get(ref, ref)
            self.commits.add(sha)
            self.commit_statuses.setdefault(sha, {})[context] = state

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
            self._answer(handler, fault, parts.path, query, raw)
            return
        try:
            with self._lock:
                status, payload, extra = self._handle(handler.command, parts.path, query, headers, raw, body)
        except _Reply as reply:
            status, payload, extra = reply.status, reply.body, reply.headers
        if fault is not None:
            self._answer(handler, fault, parts.path, query, raw)
            return
        self._send(handler, status, payload, extra, parts.path, query, raw)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and re.fullmatch(fault.path, path):
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _answer(
        self, handler: BaseHTTPRequestHandler, fault: Fault, path: str, query: dict[str, str], raw: bytes
    ) -> None:
        if fault.drop:
            handler.close_connection = True
            return
        self._send(handler, fault.status, fault.body, fault.headers, path, query, raw)

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        payload: Any,
        headers: dict[str, str],
        path: str,
        query: dict[str, str],
        raw: bytes,
    ) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        with self._lock:
            rate = self.limits.headers()
        sent = {
            **rate,
            "X-GitHub-Request-Id": github_shapes.request_id(),
            "X-GitHub-Api-Version-Selected": API_VERSION,
            "X-GitHub-Media-Type": "github.v3; format=json",
            **headers,
        }
        if self.validate:
            problems = github_contract.check(handler.command, path, query, raw, status, data, response_headers=sent)
            with self._lock:
                self.violations.extend(problems)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in sent.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes, body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if headers.get("authorization") != f"Bearer {self.token}":
            raise _Reply(401, error("Bad credentials"))
        if headers.get("x-github-api-version", API_VERSION) != API_VERSION:
            raise _Reply(400, error(f"Unsupported API version {headers['x-github-api-version']}"))
        refusal = self.limits.charge(method)
        if refusal is not None:
            raise _Reply(*refusal)
        prefix = f"/repos/{self.repository}"
        if not path.startswith(prefix + "/"):
            raise _Reply(404, error("Not Found"))
        if raw and self.validate:
            if body is None:
                raise _Reply(400, error("Problems parsing JSON"))
            invalid = github_contract.validation_problems(method, path, raw)
            if invalid:
                # GitHub checks bodies against the same description and says which field is wrong.
                raise _Reply(422, error("Invalid request.\n\n" + invalid[0][:300], status="422"))
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
        raise _Reply(404, error("Not Found"))

    def _user(self, login: str) -> dict[str, Any]:
        if login not in self.users:
            self.users[login] = github_shapes.user(self.url, login, 41898282 + len(self.users))
        return self.users[login]

    # --- deployments --------------------------------------------------------------------------------

    def _resolve(self, ref: str) -> str:
        """The commit `ref` names (a branch, or a commit sha or its prefix); 422 when none."""
        if ref in self.branches:
            return self.branches[ref]
        found = [c for c in self.commits if len(ref) >= 7 and c.startswith(ref.lower())]
        if len(found) != 1:
            raise _Reply(422, error(f"No ref found for: {ref}", "/deployments/deployments#create-a-deployment"))
        return found[0]

    def _create_deployment(self, path: str, query: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or not isinstance(body.get("ref"), str) or not body["ref"]:
            raise _Reply(422, error('Invalid request.\n\n"ref" wasn\'t supplied.'))
        ref = body["ref"]
        sha = self._resolve(ref)
        if body.get("auto_merge", True) and ref in self.behind:
            self.behind.discard(ref)
            default = next(iter(self.branches))
            return 202, {"message": f"Auto-merged {default} into {ref} on deployment."}, {}
        required = body.get("required_contexts")
        checks = self.commit_statuses.get(sha, {})
        contexts = list(checks) if required is None else list(required)
        failing = [c for c in contexts if checks.get(c) != "success"]
        if failing:
            listed = [{"context": c, "state": checks.get(c, "pending")} for c in contexts]
            detail = {"contexts": listed, "resource": "Deployment", "field": "required_contexts", "code": "invalid"}
            message = f"Conflict: Commit status checks failed for {ref}."
            raise _Reply(409, error(message, "/deployments/deployments#create-a-deployment", errors=[detail]))
        deployment_id = next(self._ids)
        deployment = github_shapes.deployment(self.repo_url, deployment_id, sha, body, self._user(self.bot))
        self.deployments[deployment_id] = deployment
        self.statuses[deployment_id] = []
        return 201, deployment, {"Location": deployment["url"]}

    def _list_deployments(self, path: str, query: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        chosen = [
            d
            for d in sorted(self.deployments.values(), key=lambda d: d["id"], reverse=True)
            if all(query.get(k) in (None, d[k]) for k in ("ref", "sha", "environment", "task"))
        ]
        return github_shapes.page(self.url, path, query, chosen)

    def _get_deployment(
        self, path: str, query: dict[str, str], body: Any, deployment_id: int
    ) -> tuple[int, Any, dict[str, str]]:
        return 200, self._deployment(deployment_id), {}

    def _deployment(self, deployment_id: int) -> dict[str, Any]:
        if deployment_id not in self.deployments:
            raise _Reply(404, error("Not Found"))
        return self.deployments[deployment_id]

    def _list_statuses(
        self, path: str, query: dict[str, str], body: Any, deployment_id: int
    ) -> tuple[int, Any, dict[str, str]]:
        self._deployment(deployment_id)
        return github_shapes.page(self.url, path, query, list(reversed(self.statuses[deployment_id])))

    def _create_status(
        self, path: str, query: dict[str, str], body: Any, deployment_id: int
    ) -> tuple[int, Any, dict[str, str]]:
        deployment = self._deployment(deployment_id)
        if not isinstance(body, dict) or body.get("state") not in STATES:
            raise _Reply(422, github_shapes.invalid("DeploymentStatus", "state", "invalid"))
        description = body.get("description") or ""
        if len(description) > 140:
            raise _Reply(422, github_shapes.invalid("DeploymentStatus", "description", "custom"))
        status = self._add_status(deployment, body["state"], description, body)
        location = {"Location": status["url"]}
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
        return 201, status, location

    def _add_status(
        self, deployment: dict[str, Any], state: str, description: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        fields = {**body, "description": description}
        doc = github_shapes.status(self.repo_url, next(self._ids), deployment, state, fields, self._user(self.bot))
        self.statuses[deployment["id"]].append(doc)
        return doc

    # --- issue comments -----------------------------------------------------------------------------

    def _list_comments(
        self, path: str, query: dict[str, str], body: Any, issue: int
    ) -> tuple[int, Any, dict[str, str]]:
        return github_shapes.page(self.url, path, query, list(self.comments.get(issue, [])))

    def _create_comment(
        self, path: str, query: dict[str, str], body: Any, issue: int
    ) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or not isinstance(body.get("body"), str) or not body["body"]:
            raise _Reply(422, github_shapes.invalid("IssueComment", "body", "missing_field"))
        if len(body["body"]) > 65536:
            raise _Reply(422, github_shapes.invalid("IssueComment", "body", "custom"))
        comment = self._new_comment(issue, body["body"], self.bot)
        return 201, comment, {"Location": comment["url"]}

    def _new_comment(self, issue: int, text: str, user: str) -> dict[str, Any]:
        comment = github_shapes.comment(self.repo_url, self.repository, issue, next(self._ids), text, self._user(user))
        self.comments.setdefault(issue, []).append(comment)
        return comment

    def _edit_comment(
        self, path: str, query: dict[str, str], body: Any, comment_id: int
    ) -> tuple[int, Any, dict[str, str]]:
        for comments in self.comments.values():
            for comment in comments:
                if comment["id"] == comment_id:
                    if not isinstance(body, dict) or not isinstance(body.get("body"), str):
                        raise _Reply(422, github_shapes.invalid("IssueComment", "body", "missing_field"))
                    comment["body"] = body["body"]
                    comment["updated_at"] = github_shapes.now()
                    return 200, comment, {}
        raise _Reply(404, error("Not Found"))
