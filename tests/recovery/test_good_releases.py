"""Which releases are good to return to: the ledger's events, newest deciding, over the platform's list."""

from __future__ import annotations

import pytest

from orchestrator.errors import ConfigError
from orchestrator.good_releases import LedgerEvent, automatic_target, candidates, judge, rollback_target
from orchestrator.platforms.base import Release


def deploy(version: str, status: str, previous: str | None = None, **extra: object) -> LedgerEvent:
    return LedgerEvent("deploy", status, version, previous, **extra)  # type: ignore[arg-type]


def rollback(to: str, status: str, previous: str, **extra: object) -> LedgerEvent:
    return LedgerEvent("rollback", status, to, previous, **extra)  # type: ignore[arg-type]


def test_good_means_live_verified_and_not_rolled_back_from_since() -> None:
    judgement = judge(
        [
            deploy("v1", "success"),
            deploy("v2", "success", "v1"),
            deploy("bad3", "rolled_back", "v2", rollback_triggered=True),
            deploy("v4", "success", "v2"),
            rollback("v2", "rolled_back", "v4"),
            deploy("v5", "failed", "v2", failed_step="gates"),
            deploy("v6", "crashed", "v2"),
            deploy("v7", "crashed", "v2", kept_live="v7"),
        ]
    )
    assert judgement.good == ("v7", "v2", "v1")
    assert judgement.bad == {"bad3", "v4", "v6"}
    assert judgement.is_candidate("v0"), "a release the ledger never saw is judged by the platform"
    assert not judgement.known("v5"), "a refused deploy says nothing about its release"


def test_a_release_redeployed_successfully_is_good_again() -> None:
    judgement = judge([deploy("v1", "success"), rollback("v0", "rolled_back", "v1"), deploy("v1", "success", "v0")])
    assert judgement.good == ("v1", "v0"), "v0 was verified by the rollback to it"
    assert judgement.bad == frozenset()


def test_a_failed_manual_rollback_makes_its_target_bad() -> None:
    judgement = judge(
        [deploy("v1", "success"), deploy("v2", "success"), rollback("v1", "failed", "v2", failed_step="rollback")]
    )
    assert judgement.good == ("v2",)
    assert "v1" in judgement.bad


RELEASES = [Release("v4"), Release("bad3"), Release("v2"), Release("v1")]


def test_manual_rollback_picks_the_newest_good_release_that_is_not_live() -> None:
    judgement = judge([deploy("v1", "success"), deploy("v2", "success"), deploy("bad3", "rolled_back")])
    assert [r.version for r in candidates(RELEASES, Release("v4"), judgement)] == ["v2", "v1"]
    assert rollback_target(None, RELEASES, Release("v4"), judgement).version == "v2"
    assert rollback_target("v1", RELEASES, Release("v4"), judgement).version == "v1"
    with pytest.raises(ConfigError) as refused:
        rollback_target("bad3", RELEASES, Release("v4"), judgement)
    assert (
        str(refused.value)
        .splitlines()[1]
        .startswith(
            "  - rollback-to: bad3 is not a good release to roll back to (it never went live and passed verification, "
            "or was rolled back from since); good releases to roll back to: v2, v1."
        )
    )
    with pytest.raises(ConfigError, match="v4 is not a good release to roll back to \\(it is live now\\)"):
        rollback_target("v4", RELEASES, Release("v4"), judgement)
    with pytest.raises(ConfigError, match="no kept release v9; good releases to roll back to: v2, v1"):
        rollback_target("v9", RELEASES, Release("v4"), judgement)


def test_without_a_ledger_the_platform_list_decides() -> None:
    assert [r.version for r in candidates(RELEASES, Release("v4"), None)] == ["bad3", "v2", "v1"]


def test_an_automatic_rollback_skips_a_live_release_the_ledger_knows_as_bad() -> None:
    judgement = judge([deploy("v1", "success"), deploy("v2", "success"), deploy("bad3", "crashed")])
    assert automatic_target(Release("v2"), lambda: RELEASES, judgement, failed_version="v4") == Release("v2")
    chosen = automatic_target(Release("bad3"), lambda: RELEASES, judgement, failed_version="v4")
    assert chosen == Release("v2")
    assert automatic_target(Release("bad3"), lambda: RELEASES, None, failed_version="v4") == Release("bad3")
