"""Recovery runs only undo scripts the SQLAgent recorded, like every other undo (issue 19)."""

from __future__ import annotations

import pytest

from tests.recovery.matrix import Site


@pytest.mark.slow
def test_recovery_leaves_a_dead_runs_migrations_when_an_undo_has_no_sqlagent_record(site: Site) -> None:
    site.deploy("v1", ["db1"])
    site.crash("v2", "after-route", migrations=["db1", "db2"])
    assert site.applied() == ["1", "2", "3"]
    # Someone else now claims the undo of V3: its origin is in doubt, so recovery must not run it.
    site.query("UPDATE sqlagent_migrations SET agent_id = 'agent_009' WHERE filename = 'V3__events_x.sql' RETURNING id")

    assert site.recover("--version", "v1") == 1

    error = site.result()["error"]
    assert "stay unrun" in error and "gate provenance" in error
    assert "U3__events_x.sql: sha256" in error and "by 'agent_009'" in error
    assert site.applied() == ["1", "2", "3"], "an undo without the SQLAgent's record ran"
    assert site.serving() == "v1", "traffic still goes back to the good release"
