"""The upstream side of the proxy: each release as a `Backend`, each of its replicas as an `Upstream`.

A backend picks its replicas round-robin and passes over those found down: a replica that
refused a connection (or that the supervisor saw exit) is skipped for `DOWN_SECONDS`, then
tried again with real traffic, which costs a refused connect at most. Each replica keeps a
small pool of idle keep-alive connections. A pooled connection idle for more than
`IDLE_REUSE_SECONDS` is closed rather than reused (the release may be closing it just then, and
a request lost that way can only be resent if it is idempotent), and so is one with unread bytes
(an answer longer than its framing said: what follows would be taken for the next answer).
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["DOWN_SECONDS", "IDLE_REUSE_SECONDS", "Backend", "Upstream"]

_CONNECT_SECONDS = 5.0
DOWN_SECONDS = 0.5
"""How long a replica found down is passed over before it is tried again."""
_MAX_IDLE_PER_UPSTREAM = 64
IDLE_REUSE_SECONDS = 2.0
"""A pooled connection idle longer than this is closed instead of reused."""

_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter, float]


def _unusable(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Closed, or holding bytes no exchange asked for."""
    return reader.at_eof() or writer.transport.is_closing() or bool(getattr(reader, "_buffer", b""))


class Upstream:
    """One replica as the proxy sees it: its port, its idle connections, whether it seems down."""

    __slots__ = ("_idle", "closed", "down_until", "name", "port")

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port
        self.closed = False
        self.down_until = 0.0
        self._idle: list[_Conn] = []

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """An idle connection (reused=True) or a fresh one. Raises OSError (TimeoutError among them)."""
        now = time.monotonic()
        while self._idle:
            reader, writer, since = self._idle.pop()
            if now - since > IDLE_REUSE_SECONDS or _unusable(reader, writer):
                writer.close()
                continue
            return reader, writer, True
        if self.closed:
            raise ConnectionRefusedError(f"{self.name} is stopped")
        async with asyncio.timeout(_CONNECT_SECONDS):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        return reader, writer, False

    def park(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Keep a connection whose last exchange completed cleanly for the next request."""
        if self.closed or len(self._idle) >= _MAX_IDLE_PER_UPSTREAM or _unusable(reader, writer):
            writer.close()
        else:
            self._idle.append((reader, writer, time.monotonic()))

    def mark_down(self) -> None:
        """Pass this replica over for a while, and drop its idle connections (they died with it)."""
        self.down_until = time.monotonic() + DOWN_SECONDS
        self.flush()

    def flush(self) -> None:
        """Close the idle connections."""
        for _, writer, _ in self._idle:
            writer.close()
        self._idle.clear()


class Backend:
    """One release as the proxy sees it: its replicas, and the requests in flight on it."""

    __slots__ = ("_next", "_quiet", "closed", "inflight", "upstreams", "version")

    def __init__(self, version: str, ports: tuple[int, ...]) -> None:
        if not ports:
            raise ValueError(f"release {version}: a backend needs at least one port")
        self.version = version
        single = len(ports) == 1
        self.upstreams = tuple(
            Upstream(f"release {version}" if single else f"release {version} replica {i}", port)
            for i, port in enumerate(ports)
        )
        self.inflight = 0
        self.closed = False
        self._next = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(u.port for u in self.upstreams)

    def pick(self, excluded: set[Upstream] | frozenset[Upstream] = frozenset()) -> Upstream | None:
        """The next replica round-robin, passing over the excluded and (while others remain) the down ones."""
        count = len(self.upstreams)
        start, self._next = self._next, (self._next + 1) % count
        now = time.monotonic()
        fallback = None
        for step in range(count):
            upstream = self.upstreams[(start + step) % count]
            if upstream in excluded:
                continue
            if upstream.down_until <= now:
                return upstream
            fallback = fallback or upstream
        return fallback

    def begin(self) -> None:
        self.inflight += 1
        self._quiet.clear()

    def end(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self._quiet.set()

    async def drain(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if `timeout` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._quiet.wait()
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.closed = True
        for upstream in self.upstreams:
            upstream.closed = True
            upstream.flush()
