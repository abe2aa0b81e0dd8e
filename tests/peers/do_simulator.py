"""A stateful DigitalOcean App Platform API on 127.0.0.1, over TLS with a test CA.

The real `pydo` client drives it unchanged (`endpoint=sim.url`, `connection_verify=sim.ca_bundle`;
azure-core refuses bearer tokens over plain http). It keeps apps, specs and deployments that move
through their phases as time passes (PENDING_BUILD -> BUILDING -> PENDING_DEPLOY -> DEPLOYING ->
ACTIVE, the previous ACTIVE -> SUPERSEDED), deployment logs, and the rollback API with pinning.

Every app serves its `live_url` as a real plain-http endpoint on another loopback port, answering
as its *active* deployment's version would: `/health` 200 or 503 (per-version switch `set_health`),
`/version` the version label (the spec's DEPLOY_ORCHESTRATOR_VERSION env var). So a test observes
which release serves, it does not assume it.

App Platform's own health gate is modelled: a deployment whose service has an `http_path` health
check and whose version is unhealthy when it finishes DEPLOYING ends in ERROR, the old one serving.

Droplets, their tags, load balancers and reserved IPs are `infra` (`tests.peers.do_droplets`), behind
the same auth, faults and contract checks.

Fault switches (`add_fault`): 429 with Retry-After, 5xx once / n times / always per route, slow
answers, connection resets, and `after=True` (do the work, then answer 5xx: the ambiguous case).
`stuck_phase` freezes new deployments in a phase; an image tag or digest containing `fail`
(or `fail_next_deploy`) makes the deployment end in ERROR with logs saying why.

Every request is recorded (`calls`) and, unless `validate=False`, checked against DigitalOcean's
OpenAPI description; problems land in `violations`.
"""

from __future__ import annotations

import json
import queue
import re
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import trustme

from tests.peers import do_contract
from tests.peers.do_droplets import DropletsState
from tests.peers.do_git import GitHosts, source_of

__all__ = ["DEFAULT_PHASES", "DoSimulator", "Fault"]

PHASES = ("PENDING_BUILD", "BUILDING", "PENDING_DEPLOY", "DEPLOYING")
DEFAULT_PHASES: dict[str, float] = {
    "PENDING_BUILD": 0.05,
    "BUILDING": 0.1,
    "PENDING_DEPLOY": 0.05,
    "DEPLOYING": 0.1,
}
VERSION_ENV = "DEPLOY_ORCHESTRATOR_VERSION"
_TERMINAL = ("ACTIVE", "SUPERSEDED", "ERROR", "CANCELED")
COMPONENT_KINDS = ("services", "workers", "jobs")
SEALED = "EV[1:"
"""App Platform's prefix for a value it encrypted (registry_credentials, SECRET envs)."""


def components(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every service, worker and job of a spec."""
    for kind in COMPONENT_KINDS:
        yield from spec.get(kind) or []


@dataclass
class Fault:
    """An injected failure for requests matching `method` and the `path` regex (full match)."""

    method: str
    path: str
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    reset: bool = False
    """Close the connection without an answer (after `delay`, and after the work when `after`)."""
    after: bool = False
    """Process the request first, then answer `status` anyway: the client cannot tell it happened."""
    times: int | None = 1
    """How many requests it hits; None: every one."""
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return method == self.method and re.fullmatch(self.path, path) is not None


@dataclass
class _Deployment:
    id: str
    app_id: str
    spec: dict[str, Any]
    cause: str
    created: float
    durations: dict[str, float]
    stuck_phase: str | None = None
    error: str | None = None
    """Why it will end in ERROR (image marker or switch), decided at creation."""
    cloned_from: str | None = None
    build_error: str | None = None
    """Why its build fails (it never reaches PENDING_DEPLOY)."""
    final: str | None = None
    final_at: float | None = None
    reason: str | None = None
    commits: dict[str, str] = field(default_factory=dict)
    """Component name -> the commit its git source was built from."""

    def built(self, now: float) -> bool:
        """Whether its build finished (a rollback deployment re-uses a built release)."""
        if self.build_error:
            return False
        at = self.created + sum(self.durations.get(p, 0.0) for p in PHASES[:2])
        return min(now, self.final_at if self.final_at is not None else now) >= at

    @property
    def version(self) -> str:
        for service in components(self.spec):
            for env in service.get("envs") or []:
                if env.get("key") == VERSION_ENV:
                    return str(env.get("value"))
        return "unlabelled"

    def natural(self, now: float) -> tuple[str, float]:
        """(phase, since) as time alone would have it, ignoring terminal outcomes."""
        start = self.created
        for phase in PHASES:
            end = start + self.durations.get(phase, 0.0)
            if phase == self.stuck_phase or now < end:
                return phase, start
            start = end
        return "DONE", start


@dataclass
class _App:
    id: str
    spec: dict[str, Any]
    created: float
    updated: float
    deployments: list[_Deployment] = field(default_factory=list)
    active: _Deployment | None = None
    pinned: _Deployment | None = None
    spec_before_rollback: dict[str, Any] | None = None
    server: ThreadingHTTPServer | None = None
    live_url: str = ""
    project_id: str | None = None


class DoSimulator:
    """`sim = DoSimulator(); app_id = sim.seed_app(...); ...; sim.close()`."""

    def __init__(
        self,
        *,
        token: str = "dop_v1_simulator-token-0000",
        phases: dict[str, float] | None = None,
        validate: bool = True,
    ) -> None:
        self.token = token
        self.phases = dict(DEFAULT_PHASES if phases is None else phases)
        self.validate = validate and do_contract.is_available()
        self.calls: list[tuple[str, str]] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.health: dict[str, bool] = {}
        self.stuck_phase: str | None = None
        self.fail_next_deploy: str | None = None
        self.rollback_refusal: tuple[str, str] | None = None
        """(code, message): make every rollback validation fail with this condition."""
        self.omit_pinned = False
        """GET app leaves out `pinned_deployment` (it is optional) while the app is pinned."""
        self.fail_next_build: str | None = None
        """The next deployment ends in ERROR at its build step: build logs only, no deploy logs."""
        self.fail_next_rollback: str | None = None
        """The next rollback deployment ends in ERROR with this reason (the app stays pinned to it)."""
        self.private_repositories: set[str] = set()
        """Image repositories that pull only with the right `registry_credentials`."""
        self.git = GitHosts()
        """The repositories git-source components build from (`git.push` moves a branch)."""
        self.log_requests: list[tuple[str, str]] = []
        """(deployment id, BUILD | DEPLOY) of every logs request, in order."""
        self._sealed: dict[str, str] = {}
        """Encrypted registry_credentials -> the plain value (what App Platform decrypts)."""
        self.apps: dict[str, _App] = {}
        self._lock = threading.RLock()
        self.infra = DropletsState(self._lock)
        """Droplets, tags, load balancers and reserved IPs (`tests.peers.do_droplets`)."""
        self._checks: queue.Queue[tuple[str, str, dict[str, str], bytes, int, bytes] | None] = queue.Queue()
        self._checker = threading.Thread(target=self._check_exchanges, name="do-sim-checker", daemon=True)
        self._checker.start()
        self._last_stamp = 0.0
        self._tmp = tempfile.TemporaryDirectory(prefix="do-sim-")
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_bundle = str(Path(self._tmp.name) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_bundle)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _api_handler(self))
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self.url = f"https://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    # --- test controls ----------------------------------------------------------------------------

    def seed_app(
        self,
        name: str = "shop",
        *,
        version: str = "v1",
        image: dict[str, Any] | None = None,
        services: tuple[str, ...] = ("web",),
        workers: tuple[str, ...] = (),
        jobs: tuple[str, ...] = (),
        extra: dict[str, Any] | None = None,
        git: dict[str, Any] | None = None,
    ) -> str:
        """An app whose first deployment of `version` is already ACTIVE; returns its id. With `git`
        (e.g. `{"github": {"repo": "acme/shop", "branch": "main"}}`) its components build from that
        source instead of an image (its branch must have been pushed: `git_push`)."""
        spec: dict[str, Any] = {"name": name, "region": "ams", **(extra or {})}

        def component(name: str, **more: Any) -> dict[str, Any]:
            source = (
                json.loads(json.dumps(git))
                if git
                else {"image": dict(image or {"registry_type": "DOCR", "repository": "shop", "tag": version})}
            )
            return {
                "name": name,
                **source,
                "instance_count": 1,
                "instance_size_slug": "apps-s-1vcpu-0.5gb",
                "envs": [{"key": VERSION_ENV, "value": version, "scope": "RUN_TIME", "type": "GENERAL"}],
                **more,
            }

        if services:
            spec["services"] = [component(s, http_port=8080) for s in services]
        if workers:
            spec["workers"] = [component(w) for w in workers]
        if jobs:
            spec["jobs"] = [{**component(j), "kind": "PRE_DEPLOY"} for j in jobs]
            for job in spec["jobs"]:
                job.pop("instance_count")
        with self._lock:
            spec = self._seal(spec)
            app = self._create_app(spec)
            first = app.deployments[0]
            first.final, first.final_at = "ACTIVE", first.created
            first.durations = {}
            app.active = first
            return app.id

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def set_health(self, version: str, healthy: bool) -> None:
        with self._lock:
            self.health[version] = healthy

    def count(self, method: str | None = None, pattern: str = ".*") -> int:
        with self._lock:
            return sum(
                1 for m, p in self.calls if (method is None or m == method) and re.fullmatch(pattern, p) is not None
            )

    def deployments(self, app_id: str) -> list[dict[str, Any]]:
        """Every deployment of the app, newest first, as the API shows them."""
        with self._lock:
            app = self.apps[app_id]
            self._settle(app)
            return [self._deployment_json(d) for d in reversed(app.deployments)]

    def wait_settled(self, app_id: str, timeout: float = 10.0) -> None:
        """Return once every deployment of the app has ended (their phases follow the clock)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                app = self.apps[app_id]
                self._settle(app)
                if all(deployment.final is not None for deployment in app.deployments):
                    return
            if time.monotonic() >= deadline:
                raise AssertionError(f"a deployment of {app_id} was still in progress after {timeout:g} s")
            time.sleep(0.01)

    def app_json(self, app_id: str) -> dict[str, Any]:
        with self._lock:
            return self._app_json(self.apps[app_id])

    def find_app(self, name: str) -> str | None:
        with self._lock:
            return next((a.id for a in self.apps.values() if a.spec.get("name") == name), None)

    def _check_exchanges(self) -> None:
        # Checked beside the answer, not before it: the client's timing (polls, backoff) is then
        # App Platform's, not the checker's. `close()` waits until every exchange was checked.
        while True:
            exchange = self._checks.get()
            if exchange is None:
                self._checks.task_done()
                return
            method, path, query, raw, status, payload = exchange
            try:
                problems = do_contract.check(method, path, query, raw, status, payload)
                if problems:
                    with self._lock:
                        self.violations.extend(problems)
            except Exception as exc:  # a checker bug must fail the test, not hang close()
                with self._lock:
                    self.violations.append(f"{method} {path}: the contract check itself failed: {exc!r}")
            finally:
                self._checks.task_done()

    def close(self) -> None:
        self._server.shutdown()
        self._checks.join()
        self._checks.put(None)  # ends the checker (a second close finds it gone and waits for nothing)
        self._checker.join(timeout=5)
        self._server.server_close()
        with self._lock:
            for app in list(self.apps.values()):
                self._stop_live(app)
        self.infra.close()
        self._tmp.cleanup()

    # --- state ------------------------------------------------------------------------------------

    def _stamp(self) -> float:
        now = max(time.time(), self._last_stamp + 1e-6)
        self._last_stamp = now
        return now

    def _create_app(self, spec: dict[str, Any]) -> _App:
        now = self._stamp()
        app = _App(id=str(uuid.uuid4()), spec=spec, created=now, updated=now)
        self.apps[app.id] = app
        self._start_live(app)
        self._new_deployment(app, spec, "initial deployment")
        return app

    def _new_deployment(
        self,
        app: _App,
        spec: dict[str, Any],
        cause: str,
        cloned_from: str | None = None,
        *,
        refresh_sources: bool = True,
        commits: dict[str, str] | None = None,
    ) -> _Deployment:
        """`refresh_sources` False (PUT without update_all_source_versions): a git source that did not
        change keeps the commit it was last built from, as App Platform does; `commits`: re-use these."""
        self._settle(app)
        resolved, source_error = (
            (dict(commits), None) if commits is not None else self._resolve(app, spec, refresh_sources)
        )
        for older in app.deployments:
            if older.final is None:
                # App Platform runs one deployment at a time: a newer one cancels the one under way.
                older.final, older.final_at = "CANCELED", time.time()
        deployment = _Deployment(
            id=str(uuid.uuid4()),
            app_id=app.id,
            spec=json.loads(json.dumps(spec)),
            cause=cause,
            created=self._stamp(),
            durations=dict(self.phases),
            stuck_phase=self.stuck_phase,
            error=self._planned_error(spec),
            cloned_from=cloned_from,
            build_error=self.fail_next_build or source_error,
            commits=resolved,
        )
        self.fail_next_deploy = None
        self.fail_next_build = None
        app.deployments.append(deployment)
        return deployment

    def _resolve(self, app: _App, spec: dict[str, Any], refresh: bool) -> tuple[dict[str, str], str | None]:
        commits: dict[str, str] = {}
        for component in components(spec):
            name, source = str(component.get("name")), source_of(component)
            if source is None:
                continue
            repo, branch, _ = source
            kept = None if refresh else self._built_commit(app, name, source)
            head = kept or self.git.head(repo, branch)
            if head is None:
                return commits, f"component {name}: branch {branch} not found in repository {repo}"
            commits[name] = head
        return commits, None

    @staticmethod
    def _built_commit(app: _App, name: str, source: tuple[str, str, bool]) -> str | None:
        for deployment in reversed(app.deployments):
            for component in components(deployment.spec):
                if (
                    component.get("name") == name
                    and source_of(component)[:2] == source[:2]
                    and name in deployment.commits
                ):
                    return deployment.commits[name]
        return None

    def git_push(self, repo: str, branch: str = "main", sha: str | None = None) -> str:
        """A commit pushed to `branch`; apps with `deploy_on_push` on it start a deployment, as App
        Platform's GitHub integration does. Returns the commit."""
        with self._lock:
            commit = self.git.push(repo, branch, sha)
            for app in list(self.apps.values()):
                pushed = [c for c in components(app.spec) if (source_of(c) or ("", "", False)) == (repo, branch, True)]
                if pushed and app.pinned is None:
                    self._new_deployment(app, app.spec, f"commit {commit[:7]} pushed to {repo}")
            return commit

    def _planned_error(self, spec: dict[str, Any]) -> str | None:
        if self.fail_next_deploy:
            return self.fail_next_deploy
        for service in components(spec):
            image = service.get("image") or {}
            if image.get("repository") in self.private_repositories:
                plain = self._sealed.get(str(image.get("registry_credentials", "")))
                if plain is None:
                    return f"pull access denied for {image['repository']}: no registry_credentials (unauthorized)"
            if "fail" in str(image.get("tag", "")) + str(image.get("digest", "")):
                return "container exited with code 1 right after start (image marked `fail`)"
        return None

    def _seal(self, spec: dict[str, Any]) -> dict[str, Any]:
        """App Platform encrypts `registry_credentials` and SECRET env values on first submission
        and takes the encrypted value back on later ones. Raises ValueError for an encrypted value
        it never issued."""
        sealed = json.loads(json.dumps(spec))
        places: list[tuple[str, dict[str, Any], str]] = []
        for service in components(sealed):
            places.append(
                (
                    f"component {service.get('name')}: registry_credentials",
                    service.get("image") or {},
                    "registry_credentials",
                )
            )
            places += [
                (f"env {e.get('key')}", e, "value") for e in service.get("envs") or [] if e.get("type") == "SECRET"
            ]
        places += [(f"env {e.get('key')}", e, "value") for e in sealed.get("envs") or [] if e.get("type") == "SECRET"]
        for where, block, key in places:
            value = block.get(key)
            if not value:
                continue
            if str(value).startswith(SEALED):
                if value not in self._sealed:
                    raise ValueError(f"{where} cannot be decrypted")
                continue
            token = f"{SEALED}{uuid.uuid4().hex}]"
            self._sealed[token] = str(value)
            block[key] = token
        return sealed

    def secret_values(self) -> set[str]:
        """The plain values of every SECRET env in the apps' current specs (what the apps run with)."""
        with self._lock:
            return {
                self._sealed[str(e["value"])]
                for app in self.apps.values()
                for c in [app.spec, *components(app.spec)]
                for e in c.get("envs") or []
                if e.get("type") == "SECRET" and str(e.get("value")) in self._sealed
            }

    def _settle(self, app: _App) -> None:
        """Advance every deployment to what the clock says; apply cutovers in order."""
        now = time.time()
        for deployment in app.deployments:
            if deployment.final is not None:
                continue
            phase, since = deployment.natural(now)
            if phase != "DONE":
                continue
            if deployment.build_error:
                built = deployment.created + sum(deployment.durations.get(p, 0.0) for p in PHASES[:2])
                deployment.final, deployment.final_at, deployment.reason = "ERROR", built, deployment.build_error
                continue
            if deployment.error:
                deployment.final, deployment.final_at, deployment.reason = "ERROR", since, deployment.error
                continue
            if self._has_health_gate(deployment) and not self.health.get(deployment.version, True):
                deployment.final, deployment.final_at = "ERROR", since
                deployment.reason = "health check failed: GET /health answered 503 for the whole rollout"
                continue
            deployment.final, deployment.final_at = "ACTIVE", since
            if app.active is not None and app.active is not deployment:
                app.active.final = "SUPERSEDED"
            app.active = deployment

    @staticmethod
    def _has_health_gate(deployment: _Deployment) -> bool:
        return any(
            (service.get("health_check") or {}).get("http_path") for service in deployment.spec.get("services") or []
        )

    def _phase(self, deployment: _Deployment) -> tuple[str, float]:
        if deployment.final is not None:
            return deployment.final, deployment.final_at or deployment.created
        phase, since = deployment.natural(time.time())
        if phase == "DONE":
            # It ended after this request settled the app (the clock moved on meanwhile): until a request
            # settles it, it is in its last phase, as the API never shows DONE.
            last = PHASES[-1]
            return last, since - deployment.durations.get(last, 0.0)
        return phase, since

    # --- JSON views -------------------------------------------------------------------------------

    def _deployment_json(self, deployment: _Deployment) -> dict[str, Any]:
        phase, since = self._phase(deployment)
        steps: list[dict[str, Any]] = []
        for name in ("build", "deploy"):
            step: dict[str, Any] = {
                "name": name,
                "status": "SUCCESS" if phase in ("ACTIVE", "SUPERSEDED") else "PENDING",
            }
            failed_here = "build" if deployment.build_error else "deploy"
            if phase == "ERROR" and name == failed_here:
                step["status"] = "ERROR"
                code = "BuildJobFailed" if deployment.build_error else "DeployContainerHealthChecksFailed"
                step["reason"] = {"code": code, "message": deployment.reason or "failed"}
            steps.append(step)
        body: dict[str, Any] = {
            "id": deployment.id,
            "cause": deployment.cause,
            "created_at": _iso(deployment.created),
            "updated_at": _iso(max(since, deployment.created)),
            "phase": phase,
            "phase_last_updated_at": _iso(since),
            "progress": {
                "success_steps": sum(1 for s in steps if s["status"] == "SUCCESS"),
                "error_steps": sum(1 for s in steps if s["status"] == "ERROR"),
                "pending_steps": sum(1 for s in steps if s["status"] == "PENDING"),
                "total_steps": len(steps),
                "steps": steps,
            },
            "spec": deployment.spec,
            **{
                kind: [self._built_component(deployment, c) for c in deployment.spec.get(kind) or []]
                for kind in COMPONENT_KINDS
                if deployment.spec.get(kind)
            },
            "tier_slug": "basic",
        }
        if deployment.cloned_from:
            body["cloned_from"] = deployment.cloned_from
        return body

    @staticmethod
    def _built_component(deployment: _Deployment, component: dict[str, Any]) -> dict[str, Any]:
        name = str(component.get("name", ""))
        body: dict[str, Any] = {"name": name}
        if name in deployment.commits and deployment.built(time.time()):
            body["source_commit_hash"] = deployment.commits[name]
        return body

    def _app_json(self, app: _App, pending: _Deployment | None = None) -> dict[str, Any]:
        self._settle(app)
        body: dict[str, Any] = {
            "id": app.id,
            "spec": app.spec,
            "created_at": _iso(app.created),
            "updated_at": _iso(app.updated),
            "tier_slug": "basic",
            "region": {"slug": app.spec.get("region", "ams"), "data_centers": [f"{app.spec.get('region', 'ams')}3"]},
        }
        if app.spec.get("services") or app.spec.get("static_sites"):
            # Workers and jobs answer on no URL: App Platform gives such an app none.
            body.update(
                default_ingress=app.live_url,
                live_url=app.live_url,
                live_url_base=app.live_url,
                live_domain=urlsplit(app.live_url).netloc,
            )
        if app.deployments:
            body["last_deployment_created_at"] = _iso(app.deployments[-1].created)
        if app.active is not None:
            body["active_deployment"] = self._deployment_json(app.active)
        running = [d for d in app.deployments if d.final is None]
        if running:
            body["in_progress_deployment"] = self._deployment_json(running[-1])
        if pending is not None:
            body["pending_deployment"] = self._deployment_json(pending)
        if app.pinned is not None and not self.omit_pinned:
            body["pinned_deployment"] = self._deployment_json(app.pinned)
        return body

    # --- live endpoints ---------------------------------------------------------------------------

    def _start_live(self, app: _App) -> None:
        app.server = ThreadingHTTPServer(("127.0.0.1", 0), _live_handler(self, app))
        app.server.daemon_threads = True
        app.live_url = f"http://127.0.0.1:{app.server.server_address[1]}"
        threading.Thread(target=app.server.serve_forever, args=(0.05,), daemon=True).start()

    def _stop_live(self, app: _App) -> None:
        if app.server is not None:
            app.server.shutdown()
            app.server.server_close()
            app.server = None

    # --- the API ----------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        """One API call against the state (faults and auth are handled by the HTTP layer)."""
        parts = [p for p in path.split("/") if p]
        if self.infra.serves(parts):
            with self._lock:
                return self.infra.handle(method, parts, query, body)
        if parts[:2] != ["v2", "apps"]:
            return 404, _error("not_found", "no such route")
        rest = parts[2:]
        with self._lock:
            if not rest:
                if method == "GET":
                    return self._list_apps(query)
                if method == "POST":
                    return self._create(body)
                return 405, _error("method_not_allowed", method)
            app = self.apps.get(rest[0])
            if app is None:
                return 404, _error("not_found", "The resource you were accessing could not be found.")
            return self._app_route(app, method, rest[1:], query, body)

    def _list_apps(self, query: dict[str, str]) -> tuple[int, Any]:
        page, per_page = int(query.get("page", 1)), int(query.get("per_page", 20))
        apps = sorted(self.apps.values(), key=lambda a: a.created)
        chunk = apps[(page - 1) * per_page : page * per_page]
        links: dict[str, Any] = {}
        if page * per_page < len(apps):
            links = {"pages": {"next": f"{self.url}/v2/apps?page={page + 1}&per_page={per_page}"}}
        return 200, {"apps": [self._app_json(a) for a in chunk], "links": links, "meta": {"total": len(apps)}}

    def _create(self, body: Any) -> tuple[int, Any]:
        spec = (body or {}).get("spec") or {}
        if not spec.get("name"):
            return 400, _error("bad_request", "spec.name is required")
        if any(a.spec.get("name") == spec["name"] for a in self.apps.values()):
            return 409, _error("conflict", f"an app named {spec['name']} already exists")
        try:
            spec = self._seal(spec)
        except ValueError as exc:
            return 400, _error("bad_request", str(exc))
        app = self._create_app(spec)
        app.project_id = (body or {}).get("project_id")
        return 200, {"app": self._app_json(app, pending=app.deployments[-1])}

    def _app_route(self, app: _App, method: str, rest: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        if not rest:
            if method == "GET":
                return 200, {"app": self._app_json(app)}
            if method == "PUT":
                if app.pinned is not None:
                    return 400, _error(
                        "bad_request", f"app is pinned to deployment {app.pinned.id}; commit or revert the rollback"
                    )
                try:
                    app.spec = self._seal((body or {}).get("spec") or app.spec)
                except ValueError as exc:
                    return 400, _error("bad_request", str(exc))
                app.updated = self._stamp()
                refresh = bool((body or {}).get("update_all_source_versions"))
                deployment = self._new_deployment(app, app.spec, "app spec updated", refresh_sources=refresh)
                return 200, {"app": self._app_json(app, pending=deployment)}
            if method == "DELETE":
                del self.apps[app.id]
                self._stop_live(app)
                return 200, {"id": app.id}
        if rest == ["health"] and method == "GET":
            return 200, {"app_health": {"components": self._component_health(app)}}
        if rest == ["deployments"]:
            if method == "GET":
                self._settle(app)
                deployments = [self._deployment_json(d) for d in reversed(app.deployments)]
                per_page = int(query.get("per_page", 20))
                return 200, {"deployments": deployments[:per_page], "links": {}, "meta": {"total": len(deployments)}}
            if method == "POST":
                deployment = self._new_deployment(app, app.spec, "manual")
                return 200, {"deployment": self._deployment_json(deployment)}
        if len(rest) >= 2 and rest[0] == "deployments":
            deployment = next((d for d in app.deployments if d.id == rest[1]), None)
            if deployment is None:
                return 404, _error("not_found", "The resource you were accessing could not be found.")
            self._settle(app)
            if len(rest) == 2 and method == "GET":
                return 200, {"deployment": self._deployment_json(deployment)}
            if rest[2:] == ["cancel"] and method == "POST":
                if deployment.final is None:
                    deployment.final, deployment.final_at = "CANCELED", time.time()
                return 200, {"deployment": self._deployment_json(deployment)}
            if rest[2:] == ["logs"] and method == "GET":
                kind = query.get("type", "UNSPECIFIED")
                self.log_requests.append((deployment.id, kind))
                if deployment.final is None:
                    return 200, {"live_url": f"wss://127.0.0.1:{self.port}/_sim/live/{deployment.id}"}
                if kind == "DEPLOY" and deployment.build_error:
                    return 400, _error("bad_request", "the deployment never reached the deploy step")
                return 200, {"historic_urls": [f"{self.url}/_sim/logs/{deployment.id}/{kind}"]}
        if rest[0] == "rollback" and method == "POST":
            return self._rollback(app, rest[1:], body)
        return 404, _error("not_found", "no such route")

    def _component_health(self, app: _App) -> list[dict[str, Any]]:
        """The active deployment's services and workers, unhealthy when its version is (`set_health`)."""
        self._settle(app)
        if app.active is None:
            return []
        healthy = self.health.get(app.active.version, True)
        return [
            {
                "name": c.get("name", ""),
                "state": "HEALTHY" if healthy else "UNHEALTHY",
                "replicas_desired": int(c.get("instance_count", 1)),
                "replicas_ready": int(c.get("instance_count", 1)) if healthy else 0,
                "cpu_usage_percent": 3.0,
                "memory_usage_percent": 20.0,
            }
            for kind in ("services", "workers")
            for c in app.active.spec.get(kind) or []
        ]

    def _rollback(self, app: _App, rest: list[str], body: Any) -> tuple[int, Any]:
        if rest == ["validate"]:
            return 200, self._validate_rollback(app, (body or {}).get("deployment_id"))
        if rest == []:
            verdict = self._validate_rollback(app, (body or {}).get("deployment_id"))
            if not verdict["valid"]:
                return 400, _error("bad_request", verdict["error"]["message"])
            target = next(d for d in app.deployments if d.id == body["deployment_id"])
            forced = self.fail_next_deploy or self.fail_next_rollback
            self.fail_next_rollback = None
            app.spec_before_rollback = app.spec
            app.spec = json.loads(json.dumps(target.spec))
            deployment = self._new_deployment(
                app, target.spec, "rollback", cloned_from=target.id, commits=target.commits
            )
            # The rollback deployment re-uses the built release: no build, a short rollout.
            deployment.durations = {
                "PENDING_DEPLOY": self.phases.get("PENDING_DEPLOY", 0.0),
                "DEPLOYING": self.phases.get("DEPLOYING", 0.0),
            }
            deployment.error = forced
            if not body.get("skip_pin"):
                app.pinned = deployment
            return 200, {"deployment": self._deployment_json(deployment)}
        if rest == ["commit"]:
            if app.pinned is None:
                return 400, _error("bad_request", "app is not pinned: there is no rollback to commit")
            app.pinned, app.spec_before_rollback = None, None
            return 200, None
        if rest == ["revert"]:
            if app.pinned is None or app.spec_before_rollback is None:
                return 400, _error("bad_request", "app is not pinned: there is no rollback to revert")
            app.spec = app.spec_before_rollback
            app.pinned, app.spec_before_rollback = None, None
            deployment = self._new_deployment(app, app.spec, "rollback reverted", refresh_sources=False)
            return 200, {"deployment": self._deployment_json(deployment)}
        return 404, _error("not_found", "no such route")

    def _validate_rollback(self, app: _App, deployment_id: Any) -> dict[str, Any]:
        self._settle(app)
        target = next((d for d in app.deployments if d.id == deployment_id), None)
        error: tuple[str, str] | None = None
        if self.rollback_refusal is not None:
            error = self.rollback_refusal
        elif app.pinned is not None:
            error = ("app_pinned", f"the app is pinned to deployment {app.pinned.id} by a rollback in progress")
        elif target is None:
            error = ("incompatible_phase", f"deployment {deployment_id} does not exist in this app")
        elif target.final == "ERROR":
            error = ("incompatible_result", 'deployment result "failed" is unsuitable for rollback')
        elif target.final not in ("ACTIVE", "SUPERSEDED") or target is app.active:
            error = ("incompatible_phase", f"deployment phase {self._phase(target)[0]} is unsuitable for rollback")
        verdict: dict[str, Any] = {"valid": error is None}
        if error is not None:
            verdict["error"] = {"code": error[0], "message": error[1]}
        if target is not None:
            undigested = [
                s.get("name", "") for s in target.spec.get("services") or [] if not (s.get("image") or {}).get("digest")
            ]
            if undigested:
                verdict["warnings"] = [
                    {
                        "code": "image_source_missing_digest",
                        "message": "one or more components are missing an image digest and are not guaranteed "
                        "rollback to the old version.",
                        "components": undigested,
                    }
                ]
        return verdict

    def log_text(self, deployment_id: str, kind: str) -> str | None:
        with self._lock:
            for app in self.apps.values():
                for deployment in app.deployments:
                    if deployment.id == deployment_id:
                        return "\n".join(self._log_lines(deployment, kind)) + "\n"
        return None

    def _log_lines(self, deployment: _Deployment, kind: str) -> Iterator[str]:
        first = next(components(deployment.spec), {})
        image = first.get("image") or {}
        ref = image.get("digest") or image.get("tag") or "latest"
        stamp = _iso(deployment.created)
        if kind == "BUILD":
            git = first.get("github") or first.get("gitlab") or first.get("git") or {}
            if git:
                yield f"{stamp} [build] cloning {git.get('repo') or git.get('repo_clone_url')} at {git.get('branch')}"
                commit = deployment.commits.get(str(first.get("name")))
                if commit:
                    yield f"{stamp} [build] checked out commit {commit}"
            else:
                yield f"{stamp} [build] using prebuilt image {image.get('repository', '?')}@{ref}: nothing to build"
            if deployment.build_error:
                yield f"{stamp} [build] error: {deployment.build_error}"
            return
        yield f"{stamp} [deploy] pulling image {image.get('repository', '?')}:{ref}"
        yield f"{stamp} [deploy] starting {len(deployment.spec.get('services') or [])} instance(s)"
        for number in range(1, 41):
            yield f"{stamp} [web] request log line {number}"
        phase, _ = self._phase(deployment)
        if phase == "ERROR":
            yield f"{stamp} [web] panic: {deployment.reason}"
            yield f"{stamp} [deploy] ERROR component web failed to start: {deployment.reason}"
        elif phase == "CANCELED":
            yield f"{stamp} [deploy] deployment cancelled while {deployment.natural(time.time())[0]}"
        else:
            yield f"{stamp} [deploy] all instances healthy; routing traffic"


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(code: str, message: str) -> dict[str, Any]:
    return {"id": code, "message": message, "request_id": str(uuid.uuid4())}


def _api_handler(sim: DoSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            split = urlsplit(self.path)
            path, query = split.path, dict(parse_qsl(split.query))
            method = self.command
            if path.startswith("/_sim/logs/"):
                _, _, _, deployment_id, kind = path.split("/")
                text = sim.log_text(deployment_id, kind)
                self._reply(404 if text is None else 200, (text or "").encode(), "text/plain")
                return
            with sim._lock:
                sim.calls.append((method, path))
                fault = next((f for f in sim.faults if f.matches(method, path)), None)
                if fault is not None:
                    fault.hits += 1
            if self.headers.get("Authorization") != f"Bearer {sim.token}":
                self._json(method, path, query, raw, 401, _error("unauthorized", "Unable to authenticate you."))
                return
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and not fault.after:
                self._fault(fault, method, path, query, raw)
                return
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                self._json(method, path, query, raw, 400, _error("bad_request", "invalid JSON"))
                return
            status, answer = sim.handle(method, path, query, body)
            if fault is not None:
                self._fault(fault, method, path, query, raw)
                return
            self._json(method, path, query, raw, status, answer)

        def _fault(self, fault: Fault, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
            if fault.reset:
                self.close_connection = True
                self.connection.close()
                return
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            code = "too_many_requests" if fault.status == 429 else "server_error"
            message = "API rate limit exceeded." if fault.status == 429 else "Server Error"
            self._json(method, path, query, raw, fault.status, _error(code, message), headers)

        def _json(
            self,
            method: str,
            path: str,
            query: dict[str, str],
            raw: bytes,
            status: int,
            answer: Any,
            headers: dict[str, str] | None = None,
        ) -> None:
            payload = b"" if answer is None else json.dumps(answer).encode()
            if sim.validate:
                sim._checks.put((method, path, query, raw, status, payload))
            self._reply(status, payload, "application/json", headers)

        def _reply(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("ratelimit-limit", "5000")
            self.send_header("ratelimit-remaining", "4999")
            self.send_header("ratelimit-reset", str(int(time.time()) + 60))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

    return Handler


def _live_handler(sim: DoSimulator, app: _App) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            with sim._lock:
                sim._settle(app)
                version = app.active.version if app.active is not None else None
                healthy = version is not None and sim.health.get(version, True)
            path = urlsplit(self.path).path
            if version is None:
                status, text = 503, "no active deployment"
            elif path == "/health":
                status, text = (200, "ok") if healthy else (503, f"{version} unhealthy")
            elif path == "/version":
                status, text = 200, version
            else:
                status, text = (200, f"hello from {version}") if healthy else (500, f"{version} is broken")
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("X-Version", version or "")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler
