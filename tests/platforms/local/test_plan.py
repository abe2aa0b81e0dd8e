"""Pure parts of the local platform: routing table, weights validation, state file, argv templates."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from orchestrator.platforms.local.process import substitute
from orchestrator.platforms.local.routing import RouteTable, check_weights
from orchestrator.platforms.local.state import ReleaseRecord, State, StatePaths, check_version, load_state, save_state


def test_a_table_with_one_target_always_picks_it_and_an_empty_one_none() -> None:
    assert RouteTable.build({"v2": 100}, {"v1": "a", "v2": "b"}).pick() == "b"
    empty: RouteTable[str] = RouteTable()
    assert empty.pick() is None


def test_weighted_pick_follows_the_weights() -> None:
    table = RouteTable.build({"v1": 90, "v2": 10, "v3": 0}, {"v1": "one", "v2": "two", "v3": "three"})
    rng = random.Random(7)
    picks = [table.pick(rng) for _ in range(10_000)]
    assert 800 <= picks.count("two") <= 1200
    assert "three" not in picks


def test_check_weights_drops_zeros_and_explains_every_problem() -> None:
    assert check_weights({"v1": 0, "v2": 100}, {"v1", "v2"}) == {"v2": 100}
    with pytest.raises(ValueError) as problems:
        check_weights({"v1": 150, "v9": 10, "v2": True}, {"v1", "v2"})
    assert str(problems.value) == (
        "weight of 'v1' is 150: use an integer from 0 to 100; "
        "release 'v9' is not running: start it before routing traffic to it; "
        "weight of 'v2' is True: use an integer from 0 to 100"
    )
    with pytest.raises(ValueError, match=r"weights \{'v1': 60\} sum to 60: they must sum to 100"):
        check_weights({"v1": 60}, {"v1"})


def test_version_labels_are_checked_before_they_become_file_names() -> None:
    assert check_version("1.4.2+build:7") == "1.4.2+build:7"
    for bad in ("", "../etc", "a/b", "-x", "v 1"):
        with pytest.raises(ValueError, match="is not a valid release label"):
            check_version(bad)
    assert StatePaths(Path("/s")).release_log("v1:2") == Path("/s/logs/v1_2.log")


def test_command_templates_substitute_port_and_version_only() -> None:
    argv = substitute(["app", "--port={port}", "{version}", '{"json": true}'], port=8001, version="v2")
    assert argv == ("app", "--port=8001", "v2", '{"json": true}')


def test_state_round_trips_and_a_broken_file_names_itself(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    assert load_state(paths) is None
    record = ReleaseRecord(
        version="v1",
        port=8001,
        argv=("app", "8001"),
        cwd="/srv",
        env=(("MODE", "demo"),),
        seq=1,
        started_at=1.5,
        startup_timeout=30.0,
        pid=42,
        pid_start=1234,
        image="img@sha256:ab",
    )
    state = State(listen="127.0.0.1:8080", releases={"v1": record}, weights={"v1": 100}, live="v1", next_seq=2)
    save_state(paths, state)
    assert load_state(paths) == state
    assert paths.state.stat().st_mode & 0o777 == 0o600

    paths.state.write_text('{"format": 1}')
    with pytest.raises(ValueError, match=r"state\.json: unreadable supervisor state .* delete the file"):
        load_state(paths)
