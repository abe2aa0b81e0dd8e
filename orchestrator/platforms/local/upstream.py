"""The upstream side of the proxy: each release as a `Backend`, each replica as an `Upstream`, each
connection to a replica as an `UpstreamConnection` that parses its answers with llhttp (or, a whole
plain one, at once: `fast_path`).

A backend picks its replicas round-robin and passes over those found down: a replica that refused a
connection (or that the supervisor saw exit) is skipped for `DOWN_SECONDS`, then tried again with real
traffic, which costs a refused connect at most. Each replica keeps a pool of idle keep-alive
connections, as large as the proxy's connection cap (a smaller pool makes a busy proxy open and close
upstream connections all the time). A pooled connection idle for more than `IDLE_REUSE_SECONDS` is closed
rather than reused (the release may be closing it just then, and a request lost that way can only be
resent if it is idempotent); one that receives bytes while idle is closed at once (an answer longer
than its framing said: what follows would be taken for the next answer).

The backend's counters are read by the supervisor's thread while the data plane's thread changes them;
each is one int, so a reader sees a value that was true a moment ago, which is all `drain` needs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, cast

import httptools

from orchestrator.platforms.local.fast_path import AnswerHead, read_answer
from orchestrator.platforms.local.meter import Meter
from orchestrator.platforms.local.wire import ProtocolError

__all__ = ["DOWN_SECONDS", "IDLE_REUSE_SECONDS", "Backend", "ResponseSink", "Upstream", "UpstreamConnection"]

_CONNECT_SECONDS = 5.0
DOWN_SECONDS = 0.5
"""How long a replica found down is passed over before it is tried again."""
IDLE_REUSE_SECONDS = 2.0
"""A pooled connection idle longer than this is closed instead of reused (read at each use)."""
_MAX_INTERIM = 16
_DRAIN_POLL_SECONDS = 0.005


class ResponseSink(Protocol):
    """What an upstream connection tells about the answer it reads (the `Exchange`)."""

    def on_answer(self, head: AnswerHead, data: bytes) -> None: ...
    def on_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool) -> None: ...
    def on_body(self, data: bytes) -> None: ...
    def on_complete(self, trailers: list[tuple[bytes, bytes]]) -> None: ...
    def on_failed(self, error: Exception) -> None: ...
    def on_lost(self, exc: Exception | None) -> None: ...
    def on_upstream_paused(self, paused: bool) -> None: ...


class _Stop(Exception):
    """Stops llhttp after the head of an answer to HEAD (it would read the announced body)."""


class UpstreamConnection(asyncio.Protocol):
    """One connection to a replica; answers go to `sink`, the exchange that sent the request."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.reusable = True
        self.closed = False
        self.idle_since = 0.0
        self.head_only = False
        """The request was HEAD: the answer ends with its head, and the connection is not reused."""
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._interim = 0
        self._in_interim = False
        self._feeding = False
        self.park_after_feed = False
        self._fresh = False
        """A request was sent and llhttp has seen nothing of its answer: a whole plain one may skip it."""

    # --- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:
            self.close()  # bytes nobody asked for
            return
        if self._fresh:
            self._fresh = False
            head = read_answer(data) if not self.head_only else None
            if head is not None:
                if not head.keep_alive:
                    self.reusable = False
                self.sink = None
                sink.on_answer(head, data)
                return
        self._feeding = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if not isinstance(cause, _Stop):
                self._fail(cause if isinstance(cause, Exception) else exc)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("answered 101 Switching Protocols, which the proxy does not support", 502))
        except httptools.HttpParserError as exc:
            if "Upgrade" in str(exc):
                self._fail(ProtocolError("answered 101 Switching Protocols, which the proxy does not support", 502))
            else:
                self._fail(ProtocolError(f"sent a malformed answer: {exc}", 502))
        finally:
            self._feeding = False
        if self.park_after_feed:
            # Parked from inside llhttp: only now is it known that no stray bytes followed the answer.
            self.park_after_feed = False
            self.upstream.park(self)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.on_lost(exc)

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.on_upstream_paused(True)

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.on_upstream_paused(False)

    # --- llhttp callbacks -----------------------------------------------------------------------

    # No on_message_begin or on_status: every callback llhttp has no method for is one call less per
    # answer. The proxy sends the standard reason phrase.

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.sink is None:
            raise ProtocolError("sent bytes after its answer", 502)
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:
                raise ProtocolError("answered 101 Switching Protocols, which the proxy does not support", 502)
            self._interim += 1
            if self._interim > _MAX_INTERIM:
                raise ProtocolError(f"sent more than {_MAX_INTERIM} interim answers", 502)
            self._in_interim = True
            self._headers = []
            return
        if self.sink is None:
            raise ProtocolError("sent bytes after its answer", 502)
        headers, self._headers = self._headers, []
        self.sink.on_head(status, b"", headers, self._parser.should_keep_alive())
        if self.head_only:
            self.reusable = False
            sink, self.sink = self.sink, None
            if sink is not None:
                sink.on_complete([])
            raise _Stop

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.on_body(body)

    def on_message_complete(self) -> None:
        if self._in_interim:
            self._in_interim = False
            return
        self._interim = 0
        trailers, self._headers = self._headers, []
        if not self._parser.should_keep_alive():
            self.reusable = False
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.on_complete(trailers)

    # --- the exchange's side --------------------------------------------------------------------

    def send(self, sink: ResponseSink, data: bytes, head_only: bool) -> None:
        self.sink = sink
        self.head_only = head_only
        self._fresh = True
        assert self.transport is not None
        self.transport.write(data)

    def _fail(self, error: Exception) -> None:
        sink, self.sink = self.sink, None
        self.close()
        if sink is not None:
            sink.on_failed(error)

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()


class Upstream:
    """One replica as the proxy sees it: its port, its idle connections, whether it seems down."""

    __slots__ = ("_idle", "closed", "down_until", "max_idle", "name", "port")

    def __init__(self, name: str, port: int, max_idle: int) -> None:
        self.name = name
        self.port = port
        self.max_idle = max_idle
        self.closed = False
        self.down_until = 0.0
        self._idle: list[UpstreamConnection] = []

    def take(self) -> UpstreamConnection | None:
        """An idle connection still fit for reuse, or None."""
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.closed or now - conn.idle_since > IDLE_REUSE_SECONDS:
                conn.close()
                continue
            return conn
        return None

    async def connect(self) -> UpstreamConnection:
        """A fresh connection. Raises OSError (TimeoutError among them)."""
        if self.closed:
            raise ConnectionRefusedError(f"{self.name} is stopped")
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(_CONNECT_SECONDS):
            _, conn = await loop.create_connection(lambda: UpstreamConnection(self), "127.0.0.1", self.port)
        return conn

    def park(self, conn: UpstreamConnection) -> None:
        """Keep a connection whose last exchange completed cleanly for the next request."""
        if conn._feeding:
            conn.park_after_feed = True
        elif self.closed or not conn.reusable or conn.closed or len(self._idle) >= self.max_idle:
            conn.close()
        else:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)

    def mark_down(self) -> None:
        """Pass this replica over for a while, and drop its idle connections (they died with it)."""
        self.down_until = time.monotonic() + DOWN_SECONDS
        self.flush()

    def flush(self) -> None:
        """Close the idle connections."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class Backend:
    """One release as the proxy sees it: its replicas, and the requests in flight on it."""

    __slots__ = ("_next", "closed", "inflight", "meter", "upstreams", "version")

    def __init__(self, version: str, ports: tuple[int, ...], max_idle: int = 1024, meter: Meter | None = None) -> None:
        if not ports:
            raise ValueError(f"release {version}: a backend needs at least one port")
        self.version = version
        single = len(ports) == 1
        self.upstreams = tuple(
            Upstream(f"release {version}" if single else f"release {version} replica {i}", port, max_idle)
            for i, port in enumerate(ports)
        )
        self.inflight = 0
        self.meter = meter or Meter()
        """Counts this release's requests; the proxy hands the same one to a backend that replaces it."""
        self.closed = False
        self._next = 0

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(u.port for u in self.upstreams)

    def pick(self, excluded: set[Upstream] | frozenset[Upstream] = frozenset()) -> Upstream | None:
        """The next replica round-robin, passing over the excluded and (while others remain) the down ones."""
        count = len(self.upstreams)
        if count == 1 and not excluded:
            return self.upstreams[0]
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

    def end(self) -> None:
        self.inflight -= 1

    async def drain(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if `timeout` passed first. Safe from any thread's loop."""
        deadline = time.monotonic() + timeout
        while self.inflight > 0:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_DRAIN_POLL_SECONDS)
        return True

    def close(self) -> None:
        """Mark every replica stopped and close the idle connections (call on the data plane's loop)."""
        self.closed = True
        for upstream in self.upstreams:
            upstream.closed = True
            upstream.flush()
