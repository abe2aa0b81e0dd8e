"""Issue 11's crash matrix: SIGKILL at each point, then `recover`; everything must be consistent."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.agentbench import AgentbenchPeer
from tests.recovery.matrix import ARMED, POINTS, Point, Site, run_point


@pytest.fixture
def agentbench() -> Iterator[AgentbenchPeer]:
    peer = AgentbenchPeer(token="agentbench-token-canary-crash-5e")
    yield peer
    peer.close()


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS, ids=[p.hook or p.watch or p.label for p in POINTS])
def test_a_crash_at_any_point_recovers_to_a_verified_good_release(
    point: Point, tmp_path: Path, pg_dsn: str, agentbench: AgentbenchPeer
) -> None:
    outcome = run_point(point, tmp_path, pg_dsn, agentbench)
    assert outcome.consistent, "\n".join([*outcome.problems, "recovery did:", *outcome.actions])


def test_the_next_deploy_recovers_first_and_says_so_in_its_result_summary_and_log(
    tmp_path: Path, pg_dsn: str, agentbench: AgentbenchPeer
) -> None:
    site = Site(tmp_path, pg_dsn, agentbench)
    try:
        site.prepare("v1", ["db1"])
        assert site.orchestrator(*site.deploy_args("v1")).wait(120) == 0
        site.prepare("v2", ["db1", "db2"])
        crashing = site.orchestrator(
            *site.deploy_args("v2"), env={**ARMED, "DEPLOY_ORCHESTRATOR_CRASH_AT": "after-route"}
        )
        assert crashing.wait(120) == -signal.SIGKILL
        assert site.serving() == "v2", "the dead run had switched"
        site.env["GITHUB_STEP_SUMMARY"] = str(tmp_path / "summary.md")
        site.prepare("v3", ["db1", "db2"])

        assert site.orchestrator(*site.deploy_args("v3")).wait(120) == 0

        result = json.loads((tmp_path / ".deploy-orchestrator" / "result.json").read_text())
        assert result["status"] == "success" and result["deployment_details"]["new_version"] == "v3"
        assert result["deployment_details"]["previous_version"] == "v1", "recovery returned to v1 first"
        recovery = result["recovery"]
        assert recovery["verified"] and recovery["serving"] == "v1" and recovery["crashed_steps"]
        assert "traffic back on v1 (was on v2)" in recovery["actions"]
        assert any(e["message"].startswith("recovery: ") for e in result["logs"])
        summary = (tmp_path / "summary.md").read_text()
        assert "### Recovery" in summary and "traffic back on v1 (was on v2)" in summary
        assert site.serving() == "v3"
        statuses = dict(site.query("SELECT new_version, status FROM deployment_log WHERE mode = 'deploy'"))
        assert statuses == {"v1": "success", "v2": "crashed", "v3": "success"}
        [crashed_id] = [d for (d,) in site.query("SELECT deployment_id FROM deployment_log WHERE status = 'crashed'")]
        pairs = [p for p in agentbench.stored.values() if p["metadata"]["deployment_id"] == crashed_id]
        assert len(pairs) == 1 and agentbench.duplicates == 0
        # What recovery undid, v3 applied again: the schema is v3's.
        applied = site.query(
            "SELECT version FROM deploy_orchestrator.schema_history WHERE type = 'SQL' AND undone_at IS NULL"
        )
        assert sorted(v for (v,) in applied) == ["1", "2", "3"]
    finally:
        site.stop()


def test_recover_with_nothing_crashed_changes_nothing(tmp_path: Path, pg_dsn: str, agentbench: AgentbenchPeer) -> None:
    site = Site(tmp_path, pg_dsn, agentbench)
    try:
        site.prepare("v1", ["db1"])
        assert site.orchestrator(*site.deploy_args("v1")).wait(120) == 0
        assert site.orchestrator("recover", "--config", "deploy.json").wait(120) == 0
        result = json.loads((tmp_path / ".deploy-orchestrator" / "result.json").read_text())
        assert result["mode"] == "recover" and result["status"] == "success" and "recovery" not in result
        assert result["deployment_details"]["new_version"] == "v1"
        assert any("nothing to do" in e["message"] for e in result["logs"])
        assert site.serving() == "v1"
        assert agentbench.stored == {}
    finally:
        site.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_cancelled_deploy_puts_traffic_back_exits_non_zero_and_leaves_the_rest_to_recovery(
    tmp_path: Path, pg_dsn: str, agentbench: AgentbenchPeer, signum: signal.Signals
) -> None:
    site = Site(tmp_path, pg_dsn, agentbench)
    try:
        site.prepare("v1", ["db1"])
        assert site.orchestrator(*site.deploy_args("v1")).wait(120) == 0
        site.prepare("v2", ["db1", "db2"])
        (site.flags / "verify-v2.hold").write_text("")
        deploying = site.orchestrator(*site.deploy_args("v2"))
        deadline = time.monotonic() + 120
        while not (site.flags / "verify-v2.held").exists():
            assert deploying.poll() is None and time.monotonic() < deadline, "the deploy never reached /verify"
            time.sleep(0.01)
        assert site.serving() == "v2", "traffic had moved to v2"

        deploying.send_signal(signum)

        assert deploying.wait(30) == 1, "it stopped waiting on the held /verify and exited non-zero"
        assert site.serving() == "v1", "traffic is back on v1, never split"
        result = json.loads((tmp_path / ".deploy-orchestrator" / "result.json").read_text())
        assert result["status"] == "failed" and result["failed_step"] == "cancelled"
        assert result["cancelled"] == {"signal": signum.name, "step": "rollout", "traffic_returned_to": "v1"}
        assert "left to recovery" in result["error"]
        [(status, step)] = site.query("SELECT status, current_step FROM deployment_log WHERE new_version = 'v2'")
        assert (status, step) == ("in_progress", "cancelled")

        (site.flags / "verify-v2.hold").unlink()
        assert site.orchestrator("recover", "--config", "deploy.json").wait(120) == 0
        [(status,)] = site.query("SELECT status FROM deployment_log WHERE new_version = 'v2'")
        assert status == "crashed"
        applied = site.query(
            "SELECT version FROM deploy_orchestrator.schema_history WHERE type = 'SQL' AND undone_at IS NULL"
        )
        assert [v for (v,) in applied] == ["1"], "recovery undid what the cancelled run applied"
        assert site.serving() == "v1"
    finally:
        site.stop()


def test_a_manual_rollback_that_died_is_finished_by_recovery(
    tmp_path: Path, pg_dsn: str, agentbench: AgentbenchPeer
) -> None:
    site = Site(tmp_path, pg_dsn, agentbench)
    try:
        site.prepare("v1", ["db1"])
        assert site.orchestrator(*site.deploy_args("v1")).wait(120) == 0
        site.prepare("v2", ["db1", "db2"])
        assert site.orchestrator(*site.deploy_args("v2")).wait(120) == 0
        crash = {**ARMED, "DEPLOY_ORCHESTRATOR_CRASH_AT": "during-manual-rollback"}
        rolling_back = site.orchestrator(*site.deploy_args("v2"), "--mode", "rollback", env=crash)
        assert rolling_back.wait(120) == -signal.SIGKILL
        assert site.serving() == "v1", "traffic had moved, the schema not yet"

        assert site.orchestrator("recover", "--config", "deploy.json").wait(120) == 0

        result = json.loads((tmp_path / ".deploy-orchestrator" / "result.json").read_text())
        assert result["recovery"]["serving"] == "v1" and result["recovery"]["verified"]
        applied = site.query(
            "SELECT version FROM deploy_orchestrator.schema_history WHERE type = 'SQL' AND undone_at IS NULL"
        )
        assert [v for (v,) in applied] == ["1"], "recovery undid what every deploy since v1 applied"
        [(status, new)] = site.query("SELECT status, new_version FROM deployment_log WHERE mode = 'rollback'")
        assert (status, new) == ("crashed", "v1")
        # v2 was rolled back from: a further rollback finds no good release (v1 is live).
        refused = site.orchestrator(*site.deploy_args("v1"), "--mode", "rollback")
        assert refused.wait(120) == 2
        assert site.serving() == "v1"
    finally:
        site.stop()
