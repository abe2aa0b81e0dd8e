"""The control protocol of the supervisor and of the proxy process: JSON lines on a unix socket.

A request is one JSON object (`{"op": ..., ...}`) and a newline on a unix socket in the state
directory; the answer is `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}` and a
newline. A connection carries any number of requests, one at a time, so a caller that keeps it (a
`Caller`, the orchestrator's `ControlClient`) makes a route call one round trip, without a connect or
a new server-side stream per call; a one-shot caller (`ask`, older clients) just closes it. An answer
that carries a file descriptor (`WithFd`) ends its connection.

A kept connection the server closed while it was idle (a server restarted, or one from before kept
connections, which closed after every answer) reads as an end of file before any answer: the caller
sends again on a fresh one. Every operation is idempotent, so that is safe even when the server did
take the request and died before answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Caller",
    "NotListeningError",
    "OperationError",
    "RefusedError",
    "WithFd",
    "ask",
    "ask_for_fd",
    "reachable",
    "serve",
]

log = logging.getLogger(__name__)

_SOCKET_PATH_MAX = 100
MESSAGE_LIMIT = 64 << 20
"""The longest request or reply line: a start names every gated file (thousands of migrations), far past
asyncio's 64 KiB default, which closed the connection on such a deploy."""
Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class OperationError(Exception):
    """A request was refused; the message goes back to the caller as is."""


class NotListeningError(Exception):
    """Nothing answers on the socket (or it closed the connection before answering)."""


class RefusedError(Exception):
    """The server answered with an error; the message is its own."""


@dataclass(frozen=True, slots=True)
class WithFd:
    """A handler's result that carries an open file descriptor (passed with SCM_RIGHTS)."""

    result: Any
    fd: int


@contextlib.contextmanager
def reachable(path: Path) -> Iterator[str]:
    """A path to connect to: `path` itself, or a short /proc path when it is too long for sockaddr_un."""
    if len(str(path)) <= _SOCKET_PATH_MAX:
        yield str(path)
        return
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{dir_fd}/{path.name}"
    finally:
        os.close(dir_fd)


async def ask(path: Path, op: str, timeout: float = 10.0, **args: Any) -> Any:
    """The result of `op`. Raises NotListeningError, RefusedError, or TimeoutError."""
    async with asyncio.timeout(timeout):
        try:
            with reachable(path) as where:
                reader, writer = await asyncio.open_unix_connection(where, limit=MESSAGE_LIMIT)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NotListeningError(f"nothing listens on {path}") from exc
        try:
            writer.write(json.dumps({"op": op, **args}).encode() + b"\n")
            await writer.drain()
            data = await reader.readline()
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise NotListeningError(f"{path} closed the connection during {op!r}") from exc
        finally:
            writer.close()
    if not data:
        raise NotListeningError(f"{path} closed the connection during {op!r}")
    return _result(data)


class Caller:
    """Asks the server on `path` over connections it keeps open between requests (see the module
    docstring); concurrent requests each take a connection of their own. Use on one event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def ask(self, op: str, timeout: float = 10.0, **args: Any) -> Any:
        """The result of `op`. Raises NotListeningError, RefusedError, or TimeoutError."""
        line = json.dumps({"op": op, **args}).encode() + b"\n"
        async with asyncio.timeout(timeout):
            while self._idle:
                data = await self._exchange(self._idle.pop(), line)
                if data:
                    return _result(data)
            data = await self._exchange(await self._connect(), line)
        if not data:
            raise NotListeningError(f"{self.path} closed the connection during {op!r}")
        return _result(data)

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            with reachable(self.path) as where:
                return await asyncio.open_unix_connection(where, limit=MESSAGE_LIMIT)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NotListeningError(f"nothing listens on {self.path}") from exc

    async def _exchange(self, pair: tuple[asyncio.StreamReader, asyncio.StreamWriter], line: bytes) -> bytes:
        """The answer line, or b"" if the connection was found closed; the connection is kept only
        after a whole answer (one cut by a timeout may still bring the old answer later)."""
        reader, writer = pair
        data = b""
        try:
            writer.write(line)
            await writer.drain()
            data = await reader.readline()
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        finally:
            if data.endswith(b"\n"):
                self._idle.append(pair)
            else:
                writer.close()
        return data


def _result(data: bytes) -> Any:
    reply = json.loads(data)
    if not reply["ok"]:
        raise RefusedError(str(reply["error"]))
    return reply["result"]


async def serve(name: str, ops: dict[str, Handler], *, log_hint: str) -> asyncio.Server:
    """Answer `ops` on the unix socket `name` (relative to the working directory: paths are short)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError as exc:  # past MESSAGE_LIMIT: answered, and the stream is given up
                    writer.write(json.dumps({"ok": False, "error": str(exc)}).encode() + b"\n")
                    await writer.drain()
                    return
                if not line:
                    return
                reply = await _reply(line, ops, log_hint)
                if isinstance(reply.get("result"), WithFd):
                    _send_with_fd(writer, reply["result"])
                    return
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except OSError:
            log.warning("control client left before its answer")
        except asyncio.CancelledError:
            # The server's loop is ending with a kept connection open: nothing is left to answer
            # (and asyncio 3.11 would log a cancelled handler as an unhandled exception).
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(answer, path=name, limit=MESSAGE_LIMIT)
    os.chmod(name, 0o600)
    return server


async def _reply(line: bytes, ops: dict[str, Handler], log_hint: str) -> dict[str, Any]:
    try:
        request = json.loads(line)
        handler = ops.get(str(request.get("op")))
        if handler is None:
            raise OperationError(f"unknown operation {request.get('op')!r}; known: {sorted(ops)}")
        return {"ok": True, "result": await handler(request)}
    except (OperationError, ValueError) as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:
        log.exception("control request failed")
        return {"ok": False, "error": f"{exc!r} (see {log_hint})"}


def _send_with_fd(writer: asyncio.StreamWriter, carried: WithFd) -> None:
    # Every earlier answer was drained from the transport, so sending beside it cannot interleave.
    raw = writer.get_extra_info("socket")
    with socket.fromfd(raw.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.setblocking(True)
        payload = json.dumps({"ok": True, "result": carried.result}).encode() + b"\n"
        socket.send_fds(sock, [payload], [carried.fd])


def ask_for_fd(path: Path, op: str, timeout: float = 5.0) -> tuple[Any, int]:
    """(result, received fd) of an operation answered with `WithFd`. Blocking; raises like `ask`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            with reachable(path) as where:
                sock.connect(where)
            sock.sendall(json.dumps({"op": op}).encode() + b"\n")
            data, fds, _, _ = socket.recv_fds(sock, 65536, 1)
        except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError, BrokenPipeError) as exc:
            raise NotListeningError(f"nothing answers {op!r} on {path}") from exc
    if not data:
        raise NotListeningError(f"{path} closed the connection during {op!r}")
    reply = json.loads(data)
    if not reply["ok"]:
        raise RefusedError(str(reply["error"]))
    if not fds:
        raise RefusedError(f"{op!r} on {path} answered without a file descriptor")
    return reply["result"], fds[0]
