"""Pure parts of the local platform: routing table, weights validation, state file, argv templates."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from orchestrator.platforms.local.process import substitute
from orchestrator.platforms.local.routing import RouteTable, check_weights
from orchestrator.platforms.local.state import (
    ReleaseRecord,
    Replica,
    RetiredRelease,
    State,
    StatePaths,
    check_version,
    load_state,
    save_routing,
    save_state,
)


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


def test_a_route_is_one_append_to_the_journal_and_the_next_whole_save_folds_it_in(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    save_state(paths, State(listen="127.0.0.1:8080", weights={"v1": 100}, live="v1"))
    written = paths.state.read_bytes()

    save_routing(paths, {"v1": 90, "v2": 10}, "v1")
    save_routing(paths, {"v2": 100}, "v2")
    assert paths.state.read_bytes() == written  # the state file is not rewritten on a route
    loaded = load_state(paths)
    assert loaded is not None and (loaded.weights, loaded.live) == ({"v2": 100}, "v2")

    # A supervisor killed in the middle of an append leaves a cut line: that route was never answered.
    with paths.routing.open("ab") as journal:
        journal.write(b'{"weights": {"v1": 1')
    loaded = load_state(paths)
    assert loaded is not None and loaded.weights == {"v2": 100}

    save_state(paths, loaded)
    assert not paths.routing.exists()
    assert load_state(paths) == loaded

    paths.routing.write_text("not json\n")
    with pytest.raises(ValueError, match=r"routing\.jsonl: unreadable routing journal .* delete the file"):
        load_state(paths)


# Exactly what the supervisor wrote before releases had replicas (format 1, one process inline).
FORMAT_1_STATE = """{
 "format": 1,
 "listen": "127.0.0.1:8080",
 "live": "v1",
 "next_seq": 2,
 "weights": {"v1": 100},
 "releases": [
  {
   "version": "v1",
   "port": 8001,
   "argv": ["app", "--port", "8001"],
   "cwd": "/srv",
   "env": [["MODE", "demo"]],
   "seq": 1,
   "started_at": 1.5,
   "startup_timeout": 30.0,
   "pid": 42,
   "pid_start": 1234,
   "image": "img@sha256:ab"
  }
 ]
}"""


def test_a_single_process_state_file_loads_as_releases_with_one_replica_and_is_saved_as_format_4(
    tmp_path: Path,
) -> None:
    paths = StatePaths(tmp_path)
    paths.state.write_text(FORMAT_1_STATE)

    state = load_state(paths)

    assert state is not None and state.live == "v1" and state.weights == {"v1": 100} and state.next_seq == 2
    record = state.releases["v1"]
    assert record.replicas == (Replica(port=8001, argv=("app", "--port", "8001"), pid=42, pid_start=1234),)
    assert (record.port, record.pid, record.env, record.image) == (8001, 42, (("MODE", "demo"),), "img@sha256:ab")
    save_state(paths, state)
    saved = json.loads(paths.state.read_text())
    assert saved["format"] == 4
    assert saved["releases"][0]["replicas"] == [
        {"port": 8001, "argv": ["app", "--port", "8001"], "pid": 42, "pid_start": 1234}
    ]
    assert "pid" not in saved["releases"][0]
    assert load_state(paths) == state


def test_a_release_with_replicas_round_trips_and_replaces_one_replica_at_a_time(tmp_path: Path) -> None:
    replicas = [Replica(port, ("app", str(port)), pid=100 + port, pid_start=7) for port in (8001, 8002, 8003)]
    record = ReleaseRecord.of(
        "v2", replicas, cwd="/srv", env=(), seq=3, started_at=2.0, startup_timeout=5.0, image=None
    )
    assert record.replicas == tuple(replicas)
    assert (record.port, record.pid) == (8001, 8101), "replica 0 is the release's direct address"

    restarted = record.with_replica(2, Replica(8003, ("app", "8003"), pid=999, pid_start=8))
    assert [r.pid for r in restarted.replicas] == [8101, 8102, 999]
    assert restarted.with_replica(0, Replica(8001, ("app", "8001"), pid=5, pid_start=9)).replicas[0].pid == 5

    paths = StatePaths(tmp_path)
    state = State(listen="127.0.0.1:8080", releases={"v2": restarted}, weights={}, live=None, next_seq=4)
    save_state(paths, state)
    assert load_state(paths) == state


def test_a_state_file_from_a_newer_supervisor_is_refused(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    paths.state.write_text(json.dumps(json.loads(FORMAT_1_STATE) | {"format": 5}))
    with pytest.raises(ValueError, match="format 5 is newer than this supervisor understands"):
        load_state(paths)


def test_every_replica_has_its_own_log_and_replica_0_keeps_the_release_log(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    assert paths.replica_log("v1.2", 0) == paths.release_log("v1.2") == tmp_path / "logs" / "v1.2.log"
    assert paths.replica_log("v1.2", 3) == tmp_path / "logs" / "v1.2@3.log"
    assert paths.replica_logs("v1.2") == []
    for index in (10, 0, 2):
        paths.replica_log("v1.2", index).parent.mkdir(exist_ok=True)
        paths.replica_log("v1.2", index).write_text("x")
    (tmp_path / "logs" / "v1.2@x.log").write_text("not a replica")
    (tmp_path / "logs" / "v1.log").write_text("another release")
    assert [p.name for p in paths.replica_logs("v1.2")] == ["v1.2.log", "v1.2@2.log", "v1.2@10.log"]


GATED = tuple(("migrations", f"db/V{n}__t{n}.sql", f"{n:064x}") for n in range(1, 501))


def _gated_release(version: str, seq: int, gated: tuple[tuple[str, str, str], ...]) -> ReleaseRecord:
    return ReleaseRecord.of(
        version,
        [Replica(8000 + seq, ("app",), pid=seq, pid_start=1)],
        cwd="/srv",
        env=(),
        seq=seq,
        started_at=1.0,
        startup_timeout=5.0,
        release_dir=f"/state/releases/{version}",
        tree_digest="d" * 64,
        gated=gated,
    )


def test_a_list_of_gated_files_releases_share_is_written_once(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    changed = (*GATED[:-1], ("migrations", "db/V500__t500.sql", "f" * 64))
    state = State(
        listen="127.0.0.1:8080",
        releases={"v1": _gated_release("v1", 1, GATED), "v2": _gated_release("v2", 2, changed)},
        weights={"v2": 100},
        live="v2",
        next_seq=3,
        retired=(RetiredRelease("v0", "e" * 64, None, GATED, 1.0), RetiredRelease("old", "c" * 64, None, (), 0.5)),
    )
    save_state(paths, state)
    saved = json.loads(paths.state.read_text())
    assert len(saved["gated_sets"]) == 3  # v1's (shared with v0), v2's, and the empty one
    assert [r["gated"] for r in saved["releases"]] == [0, 1] and [r["gated"] for r in saved["retired"]] == [0, 2]
    assert load_state(paths) == state


def test_a_format_3_state_with_its_gated_lists_inline_still_loads(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    state = State(
        listen="127.0.0.1:8080",
        releases={"v1": _gated_release("v1", 1, GATED)},
        weights={"v1": 100},
        live="v1",
        next_seq=2,
        retired=(RetiredRelease("v0", "e" * 64, None, GATED, 1.0),),
    )
    save_state(paths, state)
    doc = json.loads(paths.state.read_text())
    for item in (*doc["releases"], *doc["retired"]):
        item["gated"] = doc["gated_sets"][item["gated"]]
    del doc["gated_sets"]
    paths.state.write_text(json.dumps({**doc, "format": 3}))
    assert load_state(paths) == state


def test_a_state_naming_a_gated_list_it_does_not_hold_names_itself(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    save_state(paths, State(listen="127.0.0.1:8080", releases={"v1": _gated_release("v1", 1, GATED)}, next_seq=2))
    doc = json.loads(paths.state.read_text())
    doc["releases"][0]["gated"] = 7
    paths.state.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"state\.json: unreadable supervisor state .* delete the file"):
        load_state(paths)
