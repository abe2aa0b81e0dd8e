"""The haproxy runtime API's sessions (`haproxy_cli.RuntimeApi`) against Debian's haproxy: answers per
command, one kept connection, and a clean start again when haproxy is restarted or the connection breaks."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.platforms.local.haproxy_cli import RuntimeApi
from orchestrator.platforms.local.haproxy_plan import Server, config_text

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def start_haproxy(tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts haproxy (master-worker, admin socket `haproxy.sock` in tmp_path); kills what it started."""
    if not os.path.exists(HAPROXY):
        pytest.fail("haproxy is missing: apt-get install haproxy (.ci/install.sh does)")
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        servers = {"v1-r0": Server("v1-r0", _free_port(), 256)}
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            config_text(("127.0.0.1", _free_port()), servers, max_connections=100, stop_seconds=1, traffic_threads=1)
        )
        (tmp_path / "haproxy.sock").unlink(missing_ok=True)
        proc = subprocess.Popen([HAPROXY, "-W", "-f", str(config)], cwd=tmp_path, start_new_session=True)
        started.append(proc)
        deadline = time.monotonic() + 10
        while not (tmp_path / "haproxy.sock").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "haproxy did not start"
            time.sleep(0.01)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_each_command_of_a_line_gets_its_own_answer(start_haproxy: Callable[[], object], tmp_path: Path) -> None:
    start_haproxy()
    api = RuntimeApi(tmp_path / "haproxy.sock")
    commands = ["set weight releases/v1-r0 10", "set weight releases/nope 1", "get weight releases/v1-r0"]
    answers = asyncio.run(api.ask(commands, 5.0))
    assert answers == ["", "No such server.\n", "10 (initial 256)\n"]


def test_calls_share_one_connection(start_haproxy: Callable[[], object], tmp_path: Path) -> None:
    start_haproxy()
    api = RuntimeApi(tmp_path / "haproxy.sock")

    async def calls() -> list[int]:
        counts = []
        for _ in range(5):
            (info,) = await api.ask(["show info"], 5.0)
            counts.append(int(next(x for x in info.splitlines() if x.startswith("CumConns:")).partition(":")[2]))
        return counts

    counts = asyncio.run(calls())
    assert len(set(counts)) == 1, f"haproxy accepted a connection per call: {counts}"


def test_a_restarted_haproxy_is_reached_on_a_new_connection(
    start_haproxy: Callable[[], subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    api = RuntimeApi(tmp_path / "haproxy.sock")

    def kill(proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    async def before_and_after() -> tuple[int, int]:
        first = start_haproxy()
        before = await _pid(api)
        # In threads, as a supervisor's loop goes on running meanwhile: it sees the kept connection close.
        await asyncio.to_thread(kill, first)
        await asyncio.to_thread(start_haproxy)
        return before, await _pid(api)

    before, after = asyncio.run(before_and_after())
    assert before != after


async def _pid(api: RuntimeApi) -> int:
    (info,) = await api.ask(["show info"], 5.0)
    return int(next(x for x in info.splitlines() if x.startswith("Pid:")).partition(":")[2])


def test_a_connection_cut_during_an_answer_is_an_error_and_not_kept(tmp_path: Path) -> None:
    # A peer that answers the prompt, then closes while the command is under way (as a dying haproxy would).
    path = tmp_path / "cut.sock"
    accepted: list[int] = []

    async def scenario() -> tuple[type[BaseException] | None, list[str]]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(1)
            await reader.readline()  # prompt
            writer.write(b"\n> ")
            line = await reader.readline()
            if len(accepted) == 1:
                writer.write(b"partial")
            else:
                writer.write(b"\n> " * (line.count(b";") + 1))
            await writer.drain()
            if len(accepted) == 1:
                writer.close()
                return
            await reader.read()

        server = await asyncio.start_unix_server(serve, path=str(path))
        api = RuntimeApi(path)
        raised: type[BaseException] | None = None
        try:
            await api.ask(["show info"], 5.0)
        except OSError as exc:
            raised = type(exc)
        answers = await api.ask(["set weight a/b 1", "set weight a/c 1"], 5.0)
        api.close()
        server.close()
        return raised, answers

    raised, answers = asyncio.run(scenario())
    assert raised is ConnectionResetError
    assert answers == ["", ""]
    assert len(accepted) == 2, "the broken connection was not used again"


def test_a_command_that_would_split_the_line_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="';'"):
        asyncio.run(RuntimeApi(tmp_path / "none.sock").ask(["set weight a/b 1; shutdown sessions server a/b"], 1.0))
