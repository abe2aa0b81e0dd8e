"""Recovery runs only undo scripts the SQLAgent recorded, like every other undo (issue 19)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.agentbench import AgentbenchPeer
from tests.recovery.matrix import ARMED, Site


@pytest.fixture
def agentbench() -> Iterator[AgentbenchPeer]:
    peer = AgentbenchPeer(token="agentbench-token-canary-crash-5e")
    yield peer
    peer.close()


def _applied(site: Site) -> list[str]:
    rows = site.query("SELECT version FROM deploy_orchestrator.schema_history WHERE type = 'SQL' AND undone_at IS NULL")
    return sorted(str(v) for (v,) in rows)


@pytest.mark.slow
def test_recovery_leaves_a_dead_runs_migrations_when_an_undo_has_no_sqlagent_record(
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
        assert _applied(site) == ["1", "2", "3"]
        # Someone else now claims the undo of V3: its origin is in doubt, so recovery must not run it.
        site.query(
            "UPDATE sqlagent_migrations SET agent_id = 'agent_009' WHERE filename = 'V3__events_x.sql' RETURNING id"
        )

        assert site.orchestrator("recover", "--config", "deploy.json", "--version", "v1").wait(120) == 1

        result = json.loads((tmp_path / ".deploy-orchestrator" / "result.json").read_text())
        error = result["error"]
        assert "stay unrun" in error and "gate provenance" in error
        assert "U3__events_x.sql: sha256" in error and "by 'agent_009'" in error
        assert _applied(site) == ["1", "2", "3"], "an undo without the SQLAgent's record ran"
        assert site.serving() == "v1", "traffic still goes back to the good release"
    finally:
        site.stop()
