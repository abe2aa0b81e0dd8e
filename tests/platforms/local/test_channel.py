"""The control channel carries requests and answers far past asyncio's 64 KiB line default, and
keeps its connections between calls.

A local deploy's start names every gated file it captured; with thousands of migrations that line
was over 64 KiB, the supervisor dropped the connection, and the deploy failed and rolled back.
A route call is on a switch's critical path: both callers keep their connection, and go again on a
fresh one when the server closed it meanwhile (restarted, or one that closes after every answer).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from pathlib import Path
from typing import Any

from orchestrator.platforms.local.channel import Caller, ask, serve
from orchestrator.platforms.local.control import ControlClient
from orchestrator.platforms.local.state import StatePaths


def test_a_request_and_an_answer_of_megabytes_pass(tmp_path: Path) -> None:
    gated = [["migrations", f"db/V{n}__table_{n}.sql", "0" * 64] for n in range(12_000)]  # about 1.3 MB

    async def echo(request: dict[str, Any]) -> Any:
        return {"count": len(request["gated"]), "gated": request["gated"]}

    async def scenario() -> Any:
        here = os.getcwd()
        os.chdir(tmp_path)
        try:
            server = await serve("control.sock", {"start": echo}, log_hint="the log")
        finally:
            os.chdir(here)
        async with server:
            answer = await ask(tmp_path / "control.sock", "start", gated=gated)
            # The orchestrator's side is a plain blocking socket: the same size, the same answer.
            blocking = await asyncio.to_thread(
                ControlClient(StatePaths(tmp_path)).call, "start", timeout=30.0, gated=gated
            )
        return answer, blocking

    answer, blocking = asyncio.run(scenario())
    assert answer["count"] == blocking["count"] == len(gated)
    assert answer["gated"] == blocking["gated"] == gated


def test_both_callers_keep_their_connection(tmp_path: Path) -> None:
    connections: set[int] = set()

    async def echo(request: dict[str, Any]) -> Any:
        connections.add(id(asyncio.current_task()))  # the server serves each connection in a task of its own
        return request["n"]

    client = ControlClient(StatePaths(tmp_path))

    async def scenario() -> list[Any]:
        here = os.getcwd()
        os.chdir(tmp_path)
        try:
            server = await serve("control.sock", {"status": echo}, log_hint="the log")
        finally:
            os.chdir(here)
        async with server:
            caller = Caller(tmp_path / "control.sock")
            answers = []
            for n in range(3):
                answers.append(await caller.ask("status", n=n))
                answers.append(await asyncio.to_thread(client.call, "status", n=10 + n))
            caller.close()
            client.close()
        return answers

    assert asyncio.run(scenario()) == [0, 10, 1, 11, 2, 12]
    assert len(connections) == 2  # six calls, one connection per caller


def test_a_kept_connection_the_server_closed_is_replaced_at_once(tmp_path: Path) -> None:
    """A supervisor started again, or one from before kept connections (it answers once, then closes)."""
    path = tmp_path / "control.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen()

    def one_shot_server() -> None:
        for n in range(6):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b'{"ok": true, "result": %d}\n' % n)

    thread = threading.Thread(target=one_shot_server, daemon=True)
    thread.start()
    client = ControlClient(StatePaths(tmp_path))
    assert [client.call("status", timeout=5.0) for _ in range(3)] == [0, 1, 2]

    async def asks() -> list[Any]:
        caller = Caller(path)
        return [await caller.ask("status", timeout=5.0) for _ in range(3)]

    assert asyncio.run(asks()) == [3, 4, 5]
    thread.join(5.0)
    listener.close()
