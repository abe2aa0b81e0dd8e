"""The team notification is never lost to a crash: the run tells the team before it finishes its
ledger row, so a run killed in between leaves the row to recovery, whose own run is announced too."""

from __future__ import annotations

import pytest

from tests.peers.http import HttpPeer, Reply
from tests.recovery.matrix import Site


@pytest.mark.slow
def test_a_run_killed_after_telling_the_team_is_settled_by_recovery_which_tells_it_too(
    site: Site, http_peer: HttpPeer
) -> None:
    http_peer.route("POST", "/team", Reply(200, "ok"))
    site.config["notifications"] = {"webhook_url_env_var": "TEAM_WEBHOOK"}
    site.env["TEAM_WEBHOOK"] = f"{http_peer.url}/team"
    site.deploy("v1", ["db1"])
    http_peer.seen.clear()

    site.crash("v2", "after-notify", migrations=["db1", "db2"])

    [told] = http_peer.requests_to("/team")
    assert "v2" in told.body.decode(), "the team heard of the v2 deploy before the process died"
    [(status,)] = site.query("SELECT status FROM deployment_log WHERE mode = 'deploy' AND new_version = 'v2'")
    assert status == "in_progress", "the row the crash left unfinished is recovery's to settle"

    assert site.recover() == 0

    [(status,)] = site.query("SELECT status FROM deployment_log WHERE mode = 'deploy' AND new_version = 'v2'")
    assert status == "crashed"
    assert site.serving() == "v2", "it died after its verification passed: its release keeps serving"
    assert len(http_peer.requests_to("/team")) == 2, "the recovery's run was announced too"
