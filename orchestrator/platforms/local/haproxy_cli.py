"""haproxy's runtime API (the CLI on its admin socket) over connections kept in interactive mode.

A non-interactive line costs haproxy an accept and a session of its own, and its caller a wait for the
close, the only sign that the answer is whole. In interactive mode (`prompt`) haproxy ends each
command's answer with an empty line and the prompt `> `, so the answer is known to be whole as it
arrives, and the connection stays for the next line. A new connection sends `prompt` and its first
line in one write, so it costs no extra round trip. (Side by side under load, a kept session answers a
switch's commands no faster at the median than a connection per line: what a busy haproxy is slow at
is getting to the command at all, see `haproxy_plan.config_text`. It spares haproxy the connections
of a drain's polls, 200 a second.)

A session belongs to the worker that accepted it. After a reload the old worker still takes commands
on it while it finishes its requests, but they no longer route anything, so the owner drops every
session when it reloads haproxy (`close`). Sessions idle for longer than haproxy keeps them (`stats
timeout`, which the config sets to `IDLE_SECONDS`) are dropped before use, not found closed mid-write:
a connection that breaks during an exchange means haproxy died, and the caller cannot know which of its
commands were taken (it asks haproxy what it has before it sends more).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.platforms.local.channel import reachable

__all__ = ["IDLE_SECONDS", "RuntimeApi"]

IDLE_SECONDS = 60
"""haproxy's `stats timeout`: how long it keeps an idle CLI connection (its default is 10 s)."""
_REUSE_SECONDS = IDLE_SECONDS / 2
_PROMPT = b"\n> "
_LIMIT = 64 << 20
"""The longest answer: `show stat` grows with the servers."""
_KEEP = 4
"""Idle sessions kept: calls overlap only when a drain polls during a switch."""


@dataclass(slots=True)
class _Session:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    generation: int
    used: float = field(default_factory=time.monotonic)


class RuntimeApi:
    """Sends command lines to the haproxy CLI on `socket`; concurrent calls each take a session of their
    own. Use on one event loop."""

    def __init__(self, socket: Path) -> None:
        self._socket = socket
        self._idle: list[_Session] = []
        self._generation = 0

    async def ask(self, commands: Sequence[str], timeout: float) -> list[str]:
        """Each command's answer, in order (commands sent as one `;`-separated line). Raises OSError if
        nothing listens or the connection breaks (then which commands were taken is unknown), and
        TimeoutError."""
        if any(";" in command or "\n" in command for command in commands):
            raise ValueError(f"a CLI command holds ';' or a newline: {commands!r}")
        line = "; ".join(commands).encode() + b"\n"
        async with asyncio.timeout(timeout):
            session = self._take()
            fresh = session is None
            if session is None:
                session = await self._connect()
            try:
                session.writer.write(b"prompt\n" + line if fresh else line)
                if fresh:
                    await _answer(session.reader)  # the prompt's own, empty
                answers = [await _answer(session.reader) for _ in commands]
            except BaseException:
                # A timeout, say: the rest of its answer may still come, and must not be read as the next one's.
                session.writer.close()
                raise
        session.used = time.monotonic()
        if session.generation == self._generation and len(self._idle) < _KEEP:
            self._idle.append(session)
        else:
            session.writer.close()
        return answers

    def close(self) -> None:
        """Drop every session, idle or in use (those are closed once their call ends)."""
        self._generation += 1
        idle, self._idle = self._idle, []
        for session in idle:
            session.writer.close()

    def _take(self) -> _Session | None:
        while self._idle:
            session = self._idle.pop()
            stale = time.monotonic() - session.used > _REUSE_SECONDS
            if stale or session.reader.at_eof() or session.writer.is_closing():
                session.writer.close()
                continue
            return session
        return None

    async def _connect(self) -> _Session:
        # The generation when the connect began: one begun before a `close()` reached the old haproxy.
        generation = self._generation
        with reachable(self._socket) as path:
            reader, writer = await asyncio.open_unix_connection(path, limit=_LIMIT)
        return _Session(reader, writer, generation)


async def _answer(reader: asyncio.StreamReader) -> str:
    """One command's answer: what comes before its prompt."""
    try:
        data = await reader.readuntil(_PROMPT)
    except asyncio.IncompleteReadError as exc:
        raise ConnectionResetError("haproxy closed its CLI connection before answering") from exc
    except asyncio.LimitOverrunError as exc:
        raise ConnectionError(f"haproxy's CLI answer is longer than {_LIMIT} bytes") from exc
    return data[: -len(_PROMPT)].decode()
