"""The control channel carries requests and answers far past asyncio's 64 KiB line default.

A local deploy's start names every gated file it captured; with thousands of migrations that line
was over 64 KiB, the supervisor dropped the connection, and the deploy failed and rolled back.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from orchestrator.platforms.local.channel import ask, serve
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
