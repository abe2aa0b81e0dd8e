"""The crash matrix: kill the orchestrator (SIGKILL) at exact points of a real deploy on the local
platform, against real PostgreSQL and real release processes, then recover and check the result.

Each point runs in its own workspace and database: v1 is deployed (it creates the tables), then
the orchestrator deploys v2 in a subprocess and dies at the point, then `deploy-orchestrator
recover` runs. Points are exact, never timed: most use the test-only crash points
(orchestrator/recovery/crash_points.py); two are reached by holding a real side effect and killing
the process while it waits on it (a transaction the CREATE INDEX CONCURRENTLY must wait for; the
release's `/verify`, held open).

A point is consistent when, after recovery: the public address serves the expected good release
and it was verified; the schema is that release's (history, columns, indexes, no invalid index);
no ledger row is in progress and the crashed one is settled `crashed`; the deploy lock is free;
and agentbench received the crashed run's preference pair exactly once (stored once: a pair killed
between agentbench's answer and the outbox's record of it is sent again under the same key), with
nothing left undelivered in the outbox.

Used by tests/recovery/test_crash_matrix.py and bench/recovery.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import requests

from orchestrator.advisory_lock import DEPLOYS, AdvisoryLock
from orchestrator.artifacts import digest_artifacts
from orchestrator.config import parse_config
from orchestrator.platforms.local import supervisor_stop
from tests.peers.agentbench import AgentbenchPeer
from tests.peers.postgres import free_port
from tests.peers.verdicts import seed_passed
from tests.workspace import base_config, write_config

APP = str(Path(__file__).resolve().parent / "crash_app.py")
TOKEN = "agentbench-token-canary-crash-5e"
ARMED = {"DEPLOY_ORCHESTRATOR_CRASH_TEST": "kill-this-process"}
_WAIT = 120.0

MIGRATIONS_V1 = {
    "V1__tables.sql": "CREATE TABLE items (id int PRIMARY KEY, x int);\nCREATE TABLE events (id int, x int);\n",
    "U1__tables.sql": "DROP TABLE events;\nDROP TABLE items;\n",
}
MIGRATIONS_V2 = {
    "V2__note.sql": "ALTER TABLE items ADD COLUMN note text;\n",
    "U2__note.sql": "ALTER TABLE items DROP COLUMN note;\n",
    "V3__events_x.sql": (
        "-- deploy-orchestrator: no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS events_x_idx ON events (x);\n"
    ),
    "U3__events_x.sql": "-- deploy-orchestrator: no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS events_x_idx;\n",
}


@dataclass(frozen=True, slots=True)
class Point:
    label: str
    hook: str | None = None
    watch: str | None = None
    """'cic' (kill while CREATE INDEX CONCURRENTLY waits) or 'verify' (kill while /verify is held)."""
    fail_verify: bool = False
    serves: str = "v1"
    """The good release that must serve after recovery."""
    resends: int = 0
    """Pairs agentbench may receive twice (and store once, by Idempotency-Key): killed between its
    answer and the outbox's record of it, a pair is sent again."""


POINTS = (
    Point("after gates", hook="after-gates"),
    Point("between two migrations", hook="between-migrations"),
    Point("inside a no-transaction migration (index built, no history row)", hook="inside-no-transaction"),
    Point("inside CREATE INDEX CONCURRENTLY (index left invalid)", watch="cic"),
    Point("after the new release started", hook="after-start"),
    Point("right after the switch", hook="after-route"),
    Point("during verification", watch="verify"),
    Point("during rollback (traffic back, schema not yet)", hook="during-rollback", fail_verify=True),
    Point("during the record (deploy verified)", hook="during-record", serves="v2"),
    Point("after the rollback's pair was stored, before its delivery", hook="after-outbox-store", fail_verify=True),
    Point(
        "delivering the rollback's pair (answered, not yet marked)", hook="during-delivery", fail_verify=True, resends=1
    ),
)


@dataclass
class Outcome:
    point: Point
    crashed_step: str = "?"
    actions: list[str] = field(default_factory=list)
    recover_seconds: float = 0.0
    """From `recover` starting until the good release served, verified (recovery's own clock stamp)."""
    in_process_seconds: float = 0.0
    """Recovery itself: from finding the dead run until its release served, verified and stopped."""
    wall_seconds: float = 0.0
    """The whole `recover` run, settling and delivery included."""
    serving: str | None = None
    problems: list[str] = field(default_factory=list)
    unrecovered: list[str] = field(default_factory=list)
    """What was wrong right after the crash, before recovery (the same checks)."""

    @property
    def consistent(self) -> bool:
        return not self.problems


class Site:
    """One workspace, database and public address for one point."""

    def __init__(self, root: Path, dsn: str, agentbench: AgentbenchPeer) -> None:
        self.root = root
        self.dsn = dsn
        self.agentbench = agentbench
        self.port = free_port()
        self.flags = root / "flags"
        self.flags.mkdir(parents=True, exist_ok=True)
        self.config = base_config(self.port)
        local = self.config["deployment_config"]["local"]
        local["command"] = [
            sys.executable,
            APP,
            "--port",
            "{port}",
            "--version",
            "{version}",
            "--flags",
            str(self.flags),
        ]
        self.config["agentbench_config"]["url"] = agentbench.url
        self.config["migrations"] = {"lock_timeout_seconds": 60}
        self.config["verification"] = {
            "critical_endpoints": [{"path": "/verify", "timeout_seconds": 30}],
            "deadline_seconds": 60,
        }
        for folder, files in (("db1", MIGRATIONS_V1), ("db2", MIGRATIONS_V2)):
            (root / folder).mkdir(exist_ok=True)
            for name, text in files.items():
                (root / folder / name).write_text(text)
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "GITHUB_WORKSPACE": str(root),
            "DATABASE_URL": dsn,
            "AGENTBENCH_TOKEN": agentbench.token,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        }

    def prepare(self, version: str, migrations: list[str]) -> None:
        self.config["artifacts"]["migrations"] = migrations
        write_config(self.root, self.config)
        digests = digest_artifacts(parse_config(self.config, self.root).artifacts, self.root)
        seed_passed(self.dsn, f"run-{version}", digests)

    def orchestrator(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-c", "import sys; from orchestrator.cli import main; sys.exit(main())", *args]
        with (self.root / "orchestrator.log").open("ab") as log:
            return subprocess.Popen(
                argv, cwd=self.root, env={**self.env, **(env or {})}, stdout=subprocess.DEVNULL, stderr=log
            )

    def deploy_args(self, version: str) -> list[str]:
        return ["--config", "deploy.json", "--version", version, "--validation-run-id", f"run-{version}"]

    def deploy(self, version: str, migrations: list[str]) -> None:
        """Validate `version` with these migration folders and deploy it; it must succeed."""
        self.prepare(version, migrations)
        if self.orchestrator(*self.deploy_args(version)).wait(_WAIT) != 0:
            raise AssertionError(f"deploying {version} failed: see {self.root / 'orchestrator.log'}")

    def crash(self, version: str, at: str, *args: str, migrations: list[str] | None = None) -> None:
        """Run the orchestrator on `version` (deploy, or the mode in `args`) and kill it at crash point `at`;
        with `migrations`, validate `version` with those folders first."""
        if migrations is not None:
            self.prepare(version, migrations)
        dying = self.orchestrator(*self.deploy_args(version), *args, env={**ARMED, "DEPLOY_ORCHESTRATOR_CRASH_AT": at})
        code = dying.wait(_WAIT)
        if code != -signal.SIGKILL:
            raise AssertionError(f"the orchestrator was meant to die by SIGKILL at {at}, but exited {code}")

    def recover(self, *args: str) -> int:
        """Run `deploy-orchestrator recover` to its end; returns its exit code."""
        return self.orchestrator("recover", "--config", "deploy.json", *args).wait(_WAIT)

    def result(self) -> dict[str, Any]:
        """The last run's output contract."""
        return dict(json.loads((self.root / ".deploy-orchestrator" / "result.json").read_text()))

    def applied(self) -> list[str]:
        """The migration versions applied and not undone, in version order."""
        rows = self.query(
            "SELECT version FROM deploy_orchestrator.schema_history WHERE type = 'SQL' AND undone_at IS NULL"
        )
        return sorted(str(v) for (v,) in rows)

    def serving(self) -> str | None:
        try:
            return str(requests.get(f"http://127.0.0.1:{self.port}/version", timeout=5).json()["version"])
        except (requests.RequestException, ValueError, KeyError):
            return None

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def stop(self) -> None:
        cfg = parse_config(self.config, self.root)
        assert cfg.deployment.local is not None
        supervisor_stop(cfg.deployment.local, self.root)


def _wait_for(condition: Callable[[], bool], what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _WAIT
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the orchestrator exited ({proc.returncode}) before {what}")
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def run_point(point: Point, root: Path, dsn: str, agentbench: AgentbenchPeer) -> Outcome:
    site = Site(root, dsn, agentbench)
    outcome = Outcome(point)
    blocker: Any = None
    try:
        site.deploy("v1", ["db1"])
        site.prepare("v2", ["db1", "db2"])
        if point.fail_verify:
            (site.flags / "verify-v2.fail").write_text("")
        if point.watch == "verify":
            (site.flags / "verify-v2.hold").write_text("")
        if point.watch == "cic":
            blocker = psycopg2.connect(dsn)
            with blocker.cursor() as cur:
                cur.execute("INSERT INTO events VALUES (1, 1)")  # an open transaction CIC must wait for
        crashing = site.orchestrator(
            *site.deploy_args("v2"), env={**ARMED, "DEPLOY_ORCHESTRATOR_CRASH_AT": point.hook} if point.hook else None
        )
        if point.watch == "cic":
            _wait_for(lambda: bool(site.query(_CIC_WAITING)), "CREATE INDEX CONCURRENTLY to wait", crashing)
            crashing.send_signal(signal.SIGKILL)
        elif point.watch == "verify":
            _wait_for((site.flags / "verify-v2.held").exists, "the verification to reach /verify", crashing)
            crashing.send_signal(signal.SIGKILL)
        code = crashing.wait(_WAIT)
        if code != -signal.SIGKILL:
            outcome.problems.append(f"the orchestrator was meant to die by SIGKILL, but exited {code}")
        (site.flags / "verify-v2.hold").unlink(missing_ok=True)
        outcome.unrecovered = _state_problems(site, point)
        began, launched = time.monotonic(), time.time()
        recovering = site.orchestrator("recover", "--config", "deploy.json")
        if blocker is not None:
            # Release the blocking transaction once recovery ended the dead run's CIC session
            # (released earlier, the orphaned build would finish behind recovery's back).
            _wait_for(lambda: not site.query(_CIC_ANY), "recovery to end the orphaned index build", recovering)
            blocker.rollback()
        code = recovering.wait(_WAIT)
        outcome.wall_seconds = round(time.monotonic() - began, 2)
        if code != 0:
            outcome.problems.append(f"recover exited {code} (log: {root / 'orchestrator.log'})")
        _check(site, outcome, launched)
    finally:
        if blocker is not None:
            blocker.close()
        site.stop()
    return outcome


_CIC_WAITING = (
    "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'deploy-orchestrator %%' "
    "AND query ILIKE '%%CREATE INDEX CONCURRENTLY%%' AND wait_event_type = 'Lock'"
)
_CIC_ANY = (
    "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'deploy-orchestrator %%' "
    "AND query ILIKE '%%CREATE INDEX CONCURRENTLY%%' AND state = 'active'"
)


def _check(site: Site, outcome: Outcome, launched: float) -> None:
    point, problems = outcome.point, outcome.problems
    result = site.result()
    recovery = result.get("recovery") or {}
    outcome.actions = list(recovery.get("actions") or [])
    steps = recovery.get("crashed_steps") or {}
    outcome.crashed_step = ", ".join(steps.values()) or "none found"
    if not recovery.get("verified"):
        problems.append(f"recovery did not verify a release: {recovery or result.get('error')}")
    else:
        outcome.recover_seconds = round(float(recovery["verified_at"]) - launched, 2)
        outcome.in_process_seconds = float(recovery.get("seconds") or 0.0)
    outcome.serving = site.serving()
    problems.extend(_state_problems(site, point))
    crashed = [d for (d,) in site.query("SELECT deployment_id FROM deployment_log WHERE status = 'crashed'")]
    if crashed:
        pairs = [
            p for p in site.agentbench.stored.values() if (p.get("metadata") or {}).get("deployment_id") == crashed[0]
        ]
        if len(pairs) != 1:
            problems.append(f"agentbench holds {len(pairs)} pairs for the crashed run, not exactly one")
    if site.agentbench.duplicates > point.resends:
        problems.append(f"agentbench received {site.agentbench.duplicates} duplicate pair(s)")
    if site.query("SELECT 1 FROM hardening_outbox WHERE status <> 'delivered'"):
        problems.append("a preference pair is still undelivered in the outbox")


def _state_problems(site: Site, point: Point) -> list[str]:
    """Serving, schema, ledger and lock, as they are now."""
    problems: list[str] = []
    serving = site.serving()
    if serving != point.serves:
        problems.append(f"the public address serves {serving}, not {point.serves}")
    problems.extend(_schema_problems(site, point.serves))
    rows = site.query("SELECT status, recovery IS NOT NULL FROM deployment_log WHERE mode = 'deploy'")
    if any(status == "in_progress" for status, _ in rows):
        problems.append("a ledger row is still in_progress")
    settled = [status for status, recovered in rows if status == "crashed" and recovered]
    if len(settled) != 1:
        problems.append(f"expected one row settled as crashed, found {len(settled)}")
    environment = site.query("SELECT environment FROM deployment_log LIMIT 1")[0][0]
    lock = AdvisoryLock(DEPLOYS, f"{environment}/local/127.0.0.1:{site.port}", purpose="check", wait_setting="-")
    with psycopg2.connect(site.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s, %s)", lock.key)
        free = cur.fetchone()
        if not (free and free[0]):
            problems.append("the deploy lock is still held")
        cur.execute("SELECT pg_advisory_unlock_all()")
    return problems


def _schema_problems(site: Site, serves: str) -> list[str]:
    problems: list[str] = []
    applied = {
        row[0]
        for row in site.query(
            "SELECT version FROM deploy_orchestrator.schema_history"
            " WHERE type = 'SQL' AND success AND undone_at IS NULL"
        )
    }
    wanted = {"1"} if serves == "v1" else {"1", "2", "3"}
    if applied != wanted:
        problems.append(f"history says versions {sorted(applied)} are applied, {serves} needs {sorted(wanted)}")
    note = site.query("SELECT 1 FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'note'")
    if bool(note) != (serves == "v2"):
        problems.append(f"column items.note {'exists' if note else 'is missing'} with {serves} serving")
    index = site.query("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('events_x_idx')")
    if (serves == "v2") != bool(index) or (index and not index[0][0]):
        problems.append(f"index events_x_idx is {index or 'missing'} with {serves} serving")
    invalid = site.query("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid")
    if invalid:
        problems.append(f"invalid indexes left: {invalid}")
    return problems
