"""The per-request HTTP/1.1 reverse proxy in front of the release processes.

Every request is routed on its own (DESIGN.md §5, trap 1): the release is picked from the
current routing table when the request's head has arrived, so after a switch the next request
on an existing client keep-alive connection goes to the new release, while requests already
in flight finish on the old one. Both sides keep connections alive; the upstream side keeps a
small pool of idle connections per release.

A reused upstream connection can turn out to be dead (the release closed it while idle): if
it fails before any byte of an answer arrived and the request body is still in hand, the
request is sent once more on a fresh connection, so a switch or an idle timeout never fails a
request. Any other upstream failure before the answer starts is a 502.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from orchestrator.platforms.local.routing import RouteTable
from orchestrator.platforms.local.wire import (
    Head,
    PeerClosedError,
    ProtocolError,
    build_head,
    parse_request,
    parse_response,
    read_head,
    relay_chunked,
    relay_fixed,
    relay_until_eof,
)

__all__ = ["Backend", "Proxy"]

_CLIENT_IDLE_SECONDS = 75.0
_CONNECT_SECONDS = 5.0
_UPSTREAM_SECONDS = 300.0
_BUFFER_LIMIT = 1 << 20
"""Request bodies up to this size are read whole first, which makes the request retryable."""
_MAX_IDLE_PER_BACKEND = 64
_SMALL_BODY = 64 * 1024
_REASONS = {400: b"Bad Request", 431: b"Request Header Fields Too Large", 501: b"Not Implemented"}
_REASONS |= {502: b"Bad Gateway", 503: b"Service Unavailable", 505: b"HTTP Version Not Supported"}

_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _NoAnswerError(Exception):
    """The upstream closed the connection without sending a single byte of a response."""


class Backend:
    """One release as the proxy sees it: its port, idle upstream connections, requests in flight."""

    __slots__ = ("_idle", "_quiet", "closed", "inflight", "port", "version")

    def __init__(self, version: str, port: int) -> None:
        self.version = version
        self.port = port
        self.inflight = 0
        self.closed = False
        self._idle: list[_Conn] = []
        self._quiet = asyncio.Event()
        self._quiet.set()

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """An idle connection (reused=True) or a fresh one. Raises OSError or TimeoutError."""
        while self._idle:
            reader, writer = self._idle.pop()
            if reader.at_eof() or writer.transport.is_closing():
                writer.close()
                continue
            return reader, writer, True
        if self.closed:
            raise ConnectionRefusedError(f"release {self.version} is stopped")
        async with asyncio.timeout(_CONNECT_SECONDS):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        return reader, writer, False

    def park(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Keep a connection whose last exchange completed cleanly for the next request."""
        if self.closed or len(self._idle) >= _MAX_IDLE_PER_BACKEND:
            writer.close()
        else:
            self._idle.append((reader, writer))

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
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


class Proxy:
    """Holds the backends and the routing table; serves clients on one listening socket."""

    def __init__(self) -> None:
        self._backends: dict[str, Backend] = {}
        self._table: RouteTable[Backend] = RouteTable()
        self._weights: dict[str, int] = {}
        self._clients: dict[asyncio.StreamWriter, asyncio.Task[None]] = {}
        self._server: asyncio.Server | None = None

    # --- control (called from the supervisor, on the proxy's event loop) ----------------------

    def add_backend(self, version: str, port: int) -> None:
        current = self._backends.get(version)
        if current is not None and current.port == port and not current.closed:
            return
        self._backends[version] = Backend(version, port)
        if current is not None:
            current.close()
            self.route(self.weights())

    def remove_backend(self, version: str) -> None:
        backend = self._backends.pop(version, None)
        if backend is not None:
            backend.close()

    def backend(self, version: str) -> Backend | None:
        return self._backends.get(version)

    def route(self, weights: Mapping[str, int]) -> None:
        """Replace the routing table in one assignment; the next request picked uses it."""
        self._table = RouteTable.build(weights, self._backends)
        self._weights = dict(weights)

    def weights(self) -> dict[str, int]:
        return dict(self._weights)

    async def serve(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve_client, host, port, backlog=1024, reuse_address=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients):
            writer.close()
        for backend in self._backends.values():
            backend.close()
        # Closed sockets end the client tasks at their next read; let them finish rather than be cancelled.
        if self._clients:
            await asyncio.wait(list(self._clients.values()), timeout=1.0)

    # --- data path ------------------------------------------------------------------------------

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients[writer] = task
        try:
            while await self._serve_request(reader, writer):
                pass
        except ProtocolError as exc:
            with contextlib.suppress(OSError):
                await _reply(writer, exc.status, str(exc), keep=False)
        except (OSError, PeerClosedError, asyncio.IncompleteReadError):
            # The client went away or stalled: nothing to answer, nobody to tell.
            pass
        finally:
            self._clients.pop(writer, None)
            writer.close()

    async def _serve_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; True if the client connection stays open for another."""
        async with asyncio.timeout(_CLIENT_IDLE_SECONDS):
            raw = await read_head(reader)
        if raw is None:
            return False
        request = parse_request(raw)
        streamed = request.chunked or (request.content_length or 0) > _BUFFER_LIMIT
        if request.expects_continue and (request.chunked or request.content_length):
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = b""
        if not streamed and request.content_length:
            body = await reader.readexactly(request.content_length)
        backend = self._table.pick()
        if backend is None:
            keep = request.keep_alive and not streamed
            await _reply(writer, 503, "no release receives traffic yet: deploy one first", keep=keep)
            return keep
        backend.begin()
        try:
            return await self._exchange(request, None if streamed else body, backend, reader, writer)
        finally:
            backend.end()

    async def _exchange(
        self,
        request: Head,
        body: bytes | None,
        backend: Backend,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Forward one request to `backend` and its answer back; `body` None means stream it from the client."""
        upstream_head = build_head(request.start, request.headers)
        for attempt in (1, 2):
            try:
                up_reader, up_writer, reused = await backend.connect()
            except OSError as exc:
                return await _bad_gateway(writer, request, body, f"release {backend.version}: {exc}")
            try:
                if body is None:
                    up_writer.write(upstream_head)
                    await _relay_request_body(request, reader, up_writer)
                else:
                    up_writer.write(upstream_head + body)
                await up_writer.drain()
                async with asyncio.timeout(_UPSTREAM_SECONDS):
                    raw = await read_head(up_reader)
                if raw is None:
                    raise _NoAnswerError
                response = parse_response(raw, request.method)
            except (OSError, _NoAnswerError, PeerClosedError, ProtocolError) as exc:
                up_writer.close()
                retryable = isinstance(exc, (_NoAnswerError, ConnectionError))
                if reused and body is not None and attempt == 1 and retryable:
                    continue
                detail = "closed the connection without answering" if isinstance(exc, _NoAnswerError) else repr(exc)
                return await _bad_gateway(writer, request, body, f"release {backend.version} {detail}")
            break
        close_delimited = response.content_length is None and not response.chunked
        keep = request.keep_alive and not close_delimited
        extra = b"" if keep and request.version == b"HTTP/1.1" else _connection_header(keep)
        head = build_head(response.start, response.headers, extra)
        length = response.content_length
        if length and length <= _SMALL_BODY:
            # Read a small body whole: the client then gets one send() (not two), or a clean 502.
            try:
                head += await up_reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError) as exc:
                up_writer.close()
                return await _bad_gateway(writer, request, body, f"release {backend.version} cut its answer: {exc!r}")
        try:
            writer.write(head)
            if response.chunked:
                await relay_chunked(up_reader, writer)
            elif length and length > _SMALL_BODY:
                await relay_fixed(up_reader, writer, length)
            elif close_delimited:
                await relay_until_eof(up_reader, writer)
            await writer.drain()
        except BaseException:
            # Half an answer went out: neither connection can carry another message.
            up_writer.close()
            raise
        if response.keep_alive and not close_delimited:
            backend.park(up_reader, up_writer)
        else:
            up_writer.close()
        return keep


async def _relay_request_body(request: Head, reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
    if request.chunked:
        await relay_chunked(reader, up_writer)
    else:
        await relay_fixed(reader, up_writer, request.content_length or 0)


def _connection_header(keep: bool) -> bytes:
    return b"Connection: keep-alive\r\n" if keep else b"Connection: close\r\n"


async def _bad_gateway(writer: asyncio.StreamWriter, request: Head, body: bytes | None, detail: str) -> bool:
    # A streamed body may be half read: the connection's framing is lost, so it must close.
    keep = request.keep_alive and body is not None
    await _reply(writer, 502, f"bad gateway: {detail}", keep=keep)
    return keep


async def _reply(writer: asyncio.StreamWriter, status: int, message: str, *, keep: bool) -> None:
    body = (message + "\n").encode("utf-8", "replace")
    head = b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" % (
        status,
        _REASONS.get(status, b"Error"),
        len(body),
    )
    writer.write(head + _connection_header(keep) + b"\r\n" + body)
    await writer.drain()
