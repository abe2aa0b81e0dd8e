"""The run liveness lock against real PostgreSQL: held for the whole run, or the run does not start.

A run whose `in_progress` row has no lock behind it looks crashed to every recovery, so each way
the lock can fail to be held (taken by another session, an unreachable ledger, a transaction
pooler, a server that ends idle sessions) is either refused or defeated here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg2
import pytest

from orchestrator.errors import LockError
from orchestrator.recovery.liveness import hold_run_lock, is_alive
from orchestrator.redaction import Secret
from tests.migrations.conftest import PgBouncer
from tests.migrations.conftest import pgbouncer as pgbouncer  # the fixture, for this module too
from tests.peers import postgres
from tests.peers.agentbench import AgentbenchPeer
from tests.recovery.matrix import Site


def alive(dsn: str, deployment_id: str) -> bool:
    """What a recovery asks, from a session of its own."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        return is_alive(cur, deployment_id)


def test_a_run_holds_its_lock_while_it_runs_and_drops_it_at_the_end(pg_dsn: str) -> None:
    with hold_run_lock(Secret(pg_dsn), "dep-live"):
        assert alive(pg_dsn, "dep-live")
        assert not alive(pg_dsn, "dep-other")
    assert not alive(pg_dsn, "dep-live")


def test_a_lock_another_session_holds_is_a_refusal_naming_that_session(pg_dsn: str) -> None:
    with (
        hold_run_lock(Secret(pg_dsn), "dep-twice"),
        pytest.raises(LockError) as caught,
        hold_run_lock(Secret(pg_dsn), "dep-twice"),
    ):
        pytest.fail("the block ran without the lock")
    message = str(caught.value)
    assert message.startswith("another run holds the run liveness lock on ")
    assert "application_name 'deploy-orchestrator dep-twice'" in message
    assert caught.value.step == "lock"


def test_an_unreachable_ledger_is_a_refusal_with_the_password_masked() -> None:
    dsn = Secret(f"postgresql://u:pw-canary-liveness-4@127.0.0.1:{postgres.free_port()}/db")
    with (
        pytest.raises(LockError, match=r"^cannot take the run liveness lock: the ledger database at") as caught,
        hold_run_lock(dsn, "dep-down"),
    ):
        pytest.fail("the block ran without the lock")
    assert "pw-canary-liveness-4" not in str(caught.value) and "u:***@" in str(caught.value)
    assert str(caught.value).endswith("nothing was touched")


def test_a_transaction_pooler_is_a_refusal(
    pg_server: postgres.PostgresServer, pgbouncer: Callable[[str], PgBouncer], pg_dsn: str
) -> None:
    """Through it, the lock would stay on a pooled backend after the run died, or go to whoever shares it."""
    bouncer = pgbouncer("transaction")
    through = Secret(bouncer.dsn(pg_server, pg_dsn.rsplit("/", 1)[1]))
    with (
        pytest.raises(LockError, match=r"^cannot take the run liveness lock: .* in transaction mode") as caught,
        hold_run_lock(through, "dep-pooled"),
    ):
        pytest.fail("the block ran without a real session lock")
    assert pg_server.password not in str(caught.value)


def test_the_lock_outlives_a_server_that_ends_idle_sessions(pg_dsn: str) -> None:
    """A managed database may set idle_session_timeout; the lock's session is idle for most of a run."""
    database = pg_dsn.rsplit("/", 1)[1]
    with psycopg2.connect(pg_dsn) as admin, admin.cursor() as cur:
        cur.execute(f"ALTER DATABASE \"{database}\" SET idle_session_timeout = '300ms'")
    with hold_run_lock(Secret(pg_dsn), "dep-idle"):
        _outlast_idle_timeout(pg_dsn)
        assert alive(pg_dsn, "dep-idle"), "the server ended the lock's session: the live run looks crashed"


def _session_exists(dsn: str, pid: int) -> bool:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
        return cur.fetchone() is not None


def test_a_live_run_is_never_recovered_under_it_on_a_server_that_ends_idle_sessions(
    site: Site, pg_dsn: str, agentbench: AgentbenchPeer
) -> None:
    """The race, end to end: run A switched to v2 and waits in its verification with its lock sessions
    idle; the server ends idle sessions; recovery B starts. Had A's locks gone with their sessions, B
    would take A for dead, settle its row as crashed and put traffic back on v1 under it."""
    site.deploy("v1", ["db1"])
    site.config["deploy_lock"] = {"wait_seconds": 1}
    database = pg_dsn.rsplit("/", 1)[1]
    with psycopg2.connect(pg_dsn) as admin, admin.cursor() as cur:
        cur.execute(f"ALTER DATABASE \"{database}\" SET idle_session_timeout = '300ms'")
    site.prepare("v2", ["db1", "db2"])
    (site.flags / "verify-v2.hold").write_text("")
    a = site.orchestrator(*site.deploy_args("v2"))
    try:
        until = time.monotonic() + 120
        while not (site.flags / "verify-v2.held").exists():
            assert a.poll() is None and time.monotonic() < until, "run A never reached /verify"
            time.sleep(0.01)
        [(a_id,)] = site.query("SELECT deployment_id FROM deployment_log WHERE new_version = 'v2'")
        _outlast_idle_timeout(pg_dsn)

        b = site.recover()

        assert b == 1, "recovery B went ahead under the live run A"
        assert site.serving() == "v2", "recovery put traffic back under a live run"
        assert "another run holds the deploy lock" in site.result()["error"]
        assert alive(pg_dsn, a_id)
        [(status,)] = site.query("SELECT status FROM deployment_log WHERE deployment_id = %s", (a_id,))
        assert status == "in_progress"
    finally:
        (site.flags / "verify-v2.hold").unlink(missing_ok=True)
    assert a.wait(120) == 0, "run A, alive all along, finished its deploy"
    assert site.serving() == "v2"
    [(status,)] = site.query("SELECT status FROM deployment_log WHERE deployment_id = %s", (a_id,))
    assert status == "success"
    crash_pairs = [p for p in agentbench.stored.values() if p["metadata"]["deployment_id"] == a_id]
    assert crash_pairs == [], "a preference pair for a crash that never happened"


def _outlast_idle_timeout(dsn: str) -> None:
    """Return once the server has ended an ordinary session opened now for being idle: every session
    idle since before (the run's lock sessions among them) has been idle longer."""
    ordinary = psycopg2.connect(dsn)
    ordinary.autocommit = True
    with ordinary.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]  # type: ignore[index]
    until = time.monotonic() + 60
    while _session_exists(dsn, pid):
        assert time.monotonic() < until, "the server never ended the idle ordinary session"
        time.sleep(0.05)
    ordinary.close()


def test_a_run_that_cannot_hold_its_lock_is_refused_before_it_touches_anything(
    site: Site, pg_server: postgres.PostgresServer, pgbouncer: Callable[[str], PgBouncer], pg_dsn: str
) -> None:
    site.deploy("v1", ["db1"])
    bouncer = pgbouncer("transaction")
    site.config["ledger"] = {"dsn_env_var": "LEDGER_DSN"}
    site.env["LEDGER_DSN"] = bouncer.dsn(pg_server, pg_dsn.rsplit("/", 1)[1])
    site.prepare("v2", ["db1", "db2"])

    assert site.orchestrator(*site.deploy_args("v2")).wait(120) == 1

    result = site.result()
    assert result["failed_step"] == "lock"
    assert result["error"].startswith("cannot take the run liveness lock: ")
    assert "in transaction mode" in result["error"]
    assert site.serving() == "v1" and site.applied() == ["1"], "the refused run touched something"
    statuses = dict(site.query("SELECT new_version, status FROM deployment_log WHERE mode = 'deploy'"))
    assert statuses == {"v1": "success", "v2": "failed"}, "no in_progress row a recovery could take for a crash"
