"""A canary that judges, under continuous load: share accuracy, failed requests, detection, false fails.

    python bench/canary.py [--clients 4] [--step-requests 2000] [--equal-runs 3]

Everything runs through the real path: `plan_rollout` + `execute` drive a `LocalPlatform` (supervisor,
proxy process, demo releases whose `/work` can be made slow or failing by `DEMO_WORK`), and the analysis
reads the proxy's own counters. Load: `--clients` threads on keep-alive connections, each cycling
through 50 simulated users that keep the cookie they were given (sticky sessions on), recording every
answer's `X-Release-Version` and status on the client side, which is what the share is measured from.

Runs (steps 10/50/100; each step holds until the analysis has `--step-requests` / 10 canary requests):
- promote: an equal canary, sticky, through every step; the measured share of each step's requests
  (from its route to the next) against the weight; then `--step-requests` more at 100%;
- slow: a canary at 2x the baseline's latency (8 ms against 4 ms); errors: +5 points of 500s.
  Each must fail in its first step; the rollback follows as in a deploy (route back to the baseline);
- equal: `--equal-runs` equal canaries, not sticky; any fail is a false fail.
Failed requests: no answer, or a 502/503/504 from the proxy (the app's deliberate 500s are not).

Peers. Flagger and Kayenta need a Kubernetes cluster and a metrics store and cannot be installed here,
so the comparisons are: the same traffic split (10/50) measured on haproxy's weights (`local.proxy:
haproxy`, the best-in-class weighted balancer, no stickiness); and, for detection, the analysis this
project had before (verification checks through the public route at each step), run on the same slow
and failing canaries.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.config import parse_config
from orchestrator.demo.app import release_command
from orchestrator.errors import OrchestratorError
from orchestrator.health.release_checks import ReleaseChecks
from orchestrator.platforms.local import LocalPlatform, supervisor_stop
from orchestrator.runlog import RunLog
from orchestrator.strategies import RolloutFailure, execute, plan_rollout

USERS_PER_CLIENT = 50
BASE_DELAY_MS = 4


@dataclass
class Answer:
    at: float
    version: str
    status: int


@dataclass
class Load:
    """Client threads on keep-alive connections; every answer is kept, with its completion time."""

    port: int
    clients: int
    sticky: bool
    answers: list[Answer] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, index: int) -> None:
        cookies: dict[int, str] = {}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        user = 0
        while not self._stop.is_set():
            user = (user + 1) % USERS_PER_CLIENT
            headers = {"Cookie": cookies[user]} if self.sticky and user in cookies else {}
            try:
                conn.request("GET", "/work", headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.failed.append(type(exc).__name__)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                continue
            set_cookie = response.getheader("Set-Cookie")
            if set_cookie:
                cookies[user] = set_cookie.split(";", 1)[0]
            answer = Answer(time.monotonic(), response.getheader("X-Release-Version") or "?", response.status)
            with self._lock:
                self.answers.append(answer)
                if response.status in (502, 503, 504):
                    self.failed.append(f"HTTP {response.status}")
        conn.close()

    def count(self) -> int:
        with self._lock:
            return len(self.answers)

    def wait_for(self, requests: int, timeout: float = 120) -> None:
        target = self.count() + requests
        deadline = time.monotonic() + timeout
        while self.count() < target and time.monotonic() < deadline:
            time.sleep(0.05)

    @contextmanager
    def running(self) -> Iterator[Load]:
        threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(self.clients)]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(timeout=60)


class TimedPlatform(LocalPlatform):
    """The local platform, noting when each routing took effect (to cut the answers into steps)."""

    routes: list[tuple[float, dict[str, int]]]

    def route(self, weights: Any) -> None:
        super().route(weights)
        self.routes.append((time.monotonic(), dict(weights)))

    def route_sticky(self, weights: Any, sticky: Any) -> None:
        super().route_sticky(weights, sticky)
        self.routes.append((time.monotonic(), dict(weights)))


def config_doc(
    root: Path, port: int, proxy: str, work: dict[str, Any], *, sticky: bool, judged: bool, pause: float
) -> dict[str, Any]:
    canary: dict[str, Any] = {
        "steps": [{"weight": 10, "pause_seconds": pause}, {"weight": 50, "pause_seconds": pause}, {"weight": 100}],
    }
    if judged:
        canary["analysis"] = {"min_requests": 100, "extend_seconds": 0.25, "max_extensions": 100}
    if sticky:
        canary["sticky"] = {"cookie": "release"}
    return {
        "deployment_config": {
            "strategy": "canary",
            "platform": "local",
            "canary": canary,
            "local": {
                "command": release_command(),
                "listen": f"127.0.0.1:{port}",
                "state_dir": str(root / "state"),
                "drain_seconds": 2,
                "startup_timeout_seconds": 30,
                "proxy": proxy,
                "env": {"DEMO_WORK": json.dumps(work)},
            },
        },
        "artifacts": {"odoo_modules": [], "migrations": []},
        "health_check": {
            "endpoint": "/health",
            "expected_status": 200,
            "timeout_seconds": 5,
            "retries": 5,
            "interval_seconds": 0.2,
        },
        "rollback_config": {
            "auto_rollback_on_failure": True,
            "keep_previous_versions": 5,
            "max_rollback_duration_seconds": 60,
        },
        "agentbench_config": {
            "url": "http://127.0.0.1:9",
            "token_env_var": "AGENTBENCH_TOKEN",
            "emit_dpo_on_failure": False,
        },
        "credentials": {"do_api_token_env_var": "DIGITALOCEAN_TOKEN", "db_connection_env_var": "DATABASE_URL"},
    }


@dataclass
class Run:
    name: str
    outcome: str
    share_errors: list[tuple[int, float, int]]
    """(weight, measured share error in points, requests in the step)."""
    failed: int
    verdicts: list[dict[str, Any]]
    detect_requests: int | None = None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def canary_run(
    name: str,
    *,
    proxy: str = "python",
    slow: bool = False,
    errors: bool = False,
    sticky: bool = False,
    judged: bool = True,
    hold: bool = True,
    clients: int,
    step_requests: int,
) -> Run:
    """One canary from `old` to `new`. `hold`: each step pauses long enough for `step_requests` at the
    rate measured just before (share runs); else it is judged as soon as the analysis has enough."""
    work = {"old": {"delay_ms": BASE_DELAY_MS}, "new": {"delay_ms": BASE_DELAY_MS * (2 if slow else 1)}}
    if errors:
        work["new"]["error_pct"] = 5
    with tempfile.TemporaryDirectory(prefix="bench-canary-") as tmp:
        root = Path(tmp)
        port = free_port()
        # The live checks must not be what catches a bad canary: /health stays green on every release.
        first = parse_config(config_doc(root, port, proxy, work, sticky=sticky, judged=judged, pause=0), root)
        assert first.deployment.local is not None
        platform = TimedPlatform(first.deployment.local, root)
        platform.routes = []
        log = RunLog()
        try:
            platform.start("old", None)
            platform.route({"old": 100})
            load = Load(port, clients, sticky)
            with load.running():
                load.wait_for(200)
                began, count = time.monotonic(), load.count()
                load.wait_for(500)
                rate = (load.count() - count) / (time.monotonic() - began)
                pause = 1.3 * step_requests / rate if hold else 0
                doc = config_doc(root, port, proxy, work, sticky=sticky, judged=judged, pause=round(pause, 2))
                config = parse_config(doc, root)
                plan = plan_rollout(config, platform=platform, old="old", new="new", image=None)
                outcome = "promoted"
                verdicts: list[dict[str, Any]] = []
                try:
                    done = execute(plan, platform, ReleaseChecks(config, dsn=None), log)
                    verdicts = [v.to_dict() for v in done.verdicts]
                    load.wait_for(step_requests)
                except RolloutFailure as failure:
                    verdicts = [v.to_dict() for v in failure.outcome.verdicts]
                    outcome = "aborted"
                    live = platform.releases()
                    platform.rollback(next(r for r in live if r.version == "old"))
                    load.wait_for(step_requests // 4)
                ended = time.monotonic()
            return Run(
                name,
                outcome,
                _shares(platform.routes, load.answers, ended),
                len(load.failed),
                verdicts,
                _detect(verdicts),
            )
        finally:
            supervisor_stop(first.deployment.local, root)


def _shares(
    routes: list[tuple[float, dict[str, int]]], answers: list[Answer], ended: float
) -> list[tuple[int, float, int]]:
    out = []
    bounds = [*routes[1:], (ended, {})]  # the first route is the old release's 100%
    for (began, weights), (until, _) in zip(routes[1:], bounds[1:], strict=True):
        weight = weights.get("new", 0)
        window = [a for a in answers if began <= a.at < until]
        if not window:
            continue
        share = 100 * sum(a.version == "new" for a in window) / len(window)
        out.append((weight, abs(share - weight), len(window)))
    return out


def _detect(verdicts: list[dict[str, Any]]) -> int | None:
    failing = next((v for v in verdicts if v["outcome"] == "fail"), None)
    return None if failing is None else int(failing["canary_requests"] + failing["baseline_requests"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--step-requests", type=int, default=2000)
    parser.add_argument("--equal-runs", type=int, default=3)
    args = parser.parse_args()
    common = {"clients": args.clients, "step_requests": args.step_requests}
    runs: list[Run] = []
    try:
        runs.append(canary_run("promote (sticky)", sticky=True, **common))
        runs.append(canary_run("slow 2x", slow=True, hold=False, **common))
        runs.append(canary_run("errors +5 pts", errors=True, hold=False, **common))
        runs += [canary_run(f"equal #{i + 1}", **common) for i in range(args.equal_runs)]
        peers = [
            canary_run("peer: haproxy weights", proxy="haproxy", judged=False, **common),
            canary_run("peer: checks only, slow 2x", slow=True, judged=False, hold=False, **common),
            canary_run("peer: checks only, errors +5", errors=True, judged=False, hold=False, **common),
        ]
    except OrchestratorError as exc:
        print(f"canary: could not run: {exc}", file=sys.stderr)
        return 1

    print("machine: 2 cores shared with other sessions' work; figures vary with its load\n")
    print(f"{'run':32} {'outcome':9} {'failed':>6}  {'share error per step (pts, requests)':44} verdicts")
    for run in [*runs, *peers]:
        shares = ", ".join(f"{w}%: {e:.2f} ({n})" for w, e, n in run.share_errors)
        told = " ".join(f"{v['weight']}%{v['outcome'][0].upper()}" for v in run.verdicts) or "-"
        print(f"{run.name:32} {run.outcome:9} {run.failed:>6}  {shares:44} {told}")
    for run in runs:
        for verdict in run.verdicts:
            if verdict["outcome"] == "fail":
                metrics = "; ".join(
                    f"{m['metric']} {m['outcome']}: {m['canary']} vs {m['baseline']} "
                    f"(effect {m['effect']}, p={m['p_value']})"
                    for m in verdict["metrics"]
                )
                print(f"  {run.name}: failed at {verdict['weight']}% after {run.detect_requests} requests: {metrics}")

    promote, slow, errors = runs[0], runs[1], runs[2]
    equal = runs[3:]
    max_share = max((e for run in [promote, *equal] for _, e, _ in run.share_errors), default=0.0)
    failed = sum(run.failed for run in runs)
    detected = [r for r in (slow, errors) if r.outcome == "aborted" and r.verdicts and r.verdicts[-1]["weight"] == 10]
    detect = max((r.detect_requests or 0) for r in (slow, errors)) if len(detected) == 2 else -1
    false_fail = sum(any(v["outcome"] == "fail" for v in run.verdicts) for run in equal)
    few = [
        f"{run.name} {w}%: {n}" for run in [promote, *equal] for w, _, n in run.share_errors if n < args.step_requests
    ]
    peer_share = max((e for _, e, _ in peers[0].share_errors), default=0.0)
    print(
        f"\npeer haproxy weights: max share error {peer_share:.2f} pts; checks-only analysis on the slow canary: "
        f"{peers[1].outcome}, on the failing one: {peers[2].outcome} (a promoted bad canary is a miss)"
    )
    if few:
        print("steps with fewer requests than --step-requests: " + ", ".join(few))
    if promote.outcome != "promoted":
        print("the equal sticky canary was not promoted")
    print(
        f"canary: max_share_error_pts={max_share:.2f} failed={failed} detect_requests={detect} false_fail={false_fail}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
