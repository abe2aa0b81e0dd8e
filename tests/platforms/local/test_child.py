"""The data-plane process lifecycle (`child.Child`), shared by the python and haproxy data planes:
a failed start kills the whole process group and reaps the parent; an overstaying process has its
whole group killed (haproxy's workers with its master)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from orchestrator.platforms.local.child import Child, ChildStartError
from orchestrator.platforms.local.process import process_start_ticks

# The parent writes its child's pid, then both wait: a master with a worker, in small.
_FAMILY = 'sleep 300 & echo $! > "$1"; wait'


def _gone(pid: int) -> bool:
    return process_start_ticks(pid) is None  # exited (a zombie at most: not ours to reap)


def _reaped(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()  # not even a zombie


async def _eventually_gone(pid: int) -> bool:
    deadline = time.monotonic() + 30
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _worker_pid(path: Path) -> int:
    deadline = time.monotonic() + 30
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, "the family never started"
        await asyncio.sleep(0.02)
    return int(path.read_text())


def test_a_start_that_never_gets_ready_kills_the_group_and_reaps_the_parent(tmp_path: Path) -> None:
    async def scenario() -> None:
        child = Child("test process", tmp_path / "child.log")
        worker_file = tmp_path / "worker.pid"
        seen: list[int] = []

        async def never_ready() -> bool:
            # Waits for the worker first (however slow the machine), so that there is a group to kill.
            seen[:] = [await _worker_pid(worker_file), child.pid or 0]
            return False

        with pytest.raises(ChildStartError, match="test process was not ready within"):
            await child.start(
                ["sh", "-c", _FAMILY, "sh", str(worker_file)], cwd=tmp_path, ready=never_ready, timeout=0.2
            )
        worker, parent = seen
        assert await _eventually_gone(worker), "the worker outlived a failed start"
        assert _reaped(parent), "the parent was left a zombie"
        assert child.pid is None
        assert not child.alive()

    asyncio.run(scenario())


def test_a_start_that_exits_says_so_with_its_log_and_leaves_no_zombie(tmp_path: Path) -> None:
    async def scenario() -> None:
        child = Child("test process", tmp_path / "child.log")

        async def never() -> bool:
            return False

        with pytest.raises(ChildStartError, match=r"(?s)exited with code 3.*bad flag") as raised:
            await child.start(
                ["sh", "-c", "echo pid $$ >&2; echo bad flag >&2; exit 3"], cwd=tmp_path, ready=never, timeout=60
            )
        pid = int(str(raised.value).split("pid ", 1)[1].split()[0])
        assert _reaped(pid), "the exited process was left a zombie"

    asyncio.run(scenario())


def test_an_overstaying_process_has_its_whole_group_killed(tmp_path: Path) -> None:
    async def scenario() -> None:
        child = Child("test process", tmp_path / "child.log")
        worker_file = tmp_path / "worker.pid"

        async def ready() -> bool:
            return worker_file.exists() and bool(worker_file.read_text().strip())

        await child.start(["sh", "-c", _FAMILY, "sh", str(worker_file)], cwd=tmp_path, ready=ready, timeout=60)
        parent, worker = child.pid, await _worker_pid(worker_file)
        assert parent is not None and child.alive()
        await child.wait_gone(0.1)  # nobody asked it to stop: it overstays, and is killed
        assert not child.alive()
        assert await _eventually_gone(worker), "the worker outlived its killed parent"
        assert _reaped(parent), "the parent was left a zombie"

    asyncio.run(scenario())
