"""Issue 11's crash matrix: SIGKILL at each point, then `recover`; everything must be consistent."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.peers.agentbench import AgentbenchPeer
from tests.recovery.matrix import POINTS, Point, Site, run_point


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS, ids=[p.hook or p.watch or p.label for p in POINTS])
def test_a_crash_at_any_point_recovers_to_a_verified_good_release(
    point: Point, tmp_path: Path, pg_dsn: str, agentbench: AgentbenchPeer
) -> None:
    outcome = run_point(point, tmp_path, pg_dsn, agentbench)
    assert outcome.consistent, "\n".join([*outcome.problems, "recovery did:", *outcome.actions])


def test_the_next_deploy_recovers_first_and_says_so_in_its_result_summary_and_log(
    site: Site, tmp_path: Path, agentbench: AgentbenchPeer
) -> None:
    site.deploy("v1", ["db1"])
    site.crash("v2", "after-route", migrations=["db1", "db2"])
    assert site.serving() == "v2", "the dead run had switched"
    site.env["GITHUB_STEP_SUMMARY"] = str(tmp_path / "summary.md")

    site.deploy("v3", ["db1", "db2"])

    result = site.result()
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
    assert site.applied() == ["1", "2", "3"], "what recovery undid, v3 applied again: the schema is v3's"


def test_recover_with_nothing_crashed_changes_nothing(site: Site, agentbench: AgentbenchPeer) -> None:
    site.deploy("v1", ["db1"])

    assert site.recover() == 0

    result = site.result()
    assert result["mode"] == "recover" and result["status"] == "success" and "recovery" not in result
    assert result["deployment_details"]["new_version"] == "v1"
    assert any("nothing to do" in e["message"] for e in result["logs"])
    assert site.serving() == "v1"
    assert agentbench.stored == {}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_cancelled_deploy_puts_traffic_back_exits_non_zero_and_leaves_the_rest_to_recovery(
    site: Site, signum: signal.Signals
) -> None:
    site.deploy("v1", ["db1"])
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
    result = site.result()
    assert result["status"] == "failed" and result["failed_step"] == "cancelled"
    assert result["cancelled"] == {"signal": signum.name, "step": "rollout", "traffic_returned_to": "v1"}
    assert "left to recovery" in result["error"]
    [(status, step)] = site.query("SELECT status, current_step FROM deployment_log WHERE new_version = 'v2'")
    assert (status, step) == ("in_progress", "cancelled")

    (site.flags / "verify-v2.hold").unlink()
    assert site.recover() == 0
    [(status,)] = site.query("SELECT status FROM deployment_log WHERE new_version = 'v2'")
    assert status == "crashed"
    assert site.applied() == ["1"], "recovery undid what the cancelled run applied"
    assert site.serving() == "v1"


def test_a_manual_rollback_that_died_is_finished_by_recovery(site: Site) -> None:
    site.deploy("v1", ["db1"])
    site.deploy("v2", ["db1", "db2"])
    site.crash("v2", "during-manual-rollback", "--mode", "rollback")
    assert site.serving() == "v1", "traffic had moved, the schema not yet"

    assert site.recover() == 0

    result = site.result()
    assert result["recovery"]["serving"] == "v1" and result["recovery"]["verified"]
    assert site.applied() == ["1"], "recovery undid what every deploy since v1 applied"
    [(status, new)] = site.query("SELECT status, new_version FROM deployment_log WHERE mode = 'rollback'")
    assert (status, new) == ("crashed", "v1")
    # v2 was rolled back from: a further rollback finds no good release (v1 is live).
    refused = site.orchestrator(*site.deploy_args("v1"), "--mode", "rollback")
    assert refused.wait(120) == 2
    assert site.serving() == "v1"
