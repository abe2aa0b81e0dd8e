"""The per-request HTTP/1.1 reverse proxy in front of the release processes.

Every request is routed on its own (DESIGN.md §5, trap 1): the release is picked from the
current routing table when the request's head has arrived, so after a switch the next request
on an existing client keep-alive connection goes to the new release, while requests already
in flight finish on the old one. Then one of that release's replicas is picked, round-robin,
skipping replicas recently found down. Both sides keep connections alive; the upstream side
keeps a small pool of idle connections per replica.

A replica that fails a request before the client got any byte of the answer is replaced by
another replica of the same release, so one crashed replica costs no failed request:
- a refused (or timed-out) connection sent nothing, so any request moves on, and the replica
  is passed over for a while (see `upstream`; the supervisor also marks a replica that exited);
- a request sent but not answered (connection closed or reset before a complete small answer)
  is sent once more only if its method is idempotent (RFC 9110 §9.2.2: a POST may have run) and
  its body is still in hand. A non-idempotent request lost that way is a 502, even on a reused
  connection the release closed while idle; to keep that rare, pooled connections idle for more
  than `upstream.IDLE_REUSE_SECONDS` are not reused.
The resend goes to another replica (a dying replica can accept a connection after it reset
another); only a lone replica that failed on a reused connection gets a fresh one instead. Any
other upstream failure before the answer starts is a 502.

Interim 1xx answers from a release are read and dropped (101 is refused: the proxy forwards no
Upgrade); the client gets the final answer. After the request head, every read and write of a
body (and of the answer) must make progress within `_IO_IDLE_SECONDS`, else the connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Mapping

from orchestrator.platforms.local.routing import RouteTable
from orchestrator.platforms.local.upstream import Backend, Upstream
from orchestrator.platforms.local.wire import (
    Head,
    PeerClosedError,
    ProtocolError,
    build_head,
    parse_request,
    parse_response,
    read_body,
    read_head,
    relay_chunked,
    relay_fixed,
    relay_until_eof,
)

__all__ = ["Proxy"]

_CLIENT_IDLE_SECONDS = 75.0
_UPSTREAM_SECONDS = 300.0
_IO_IDLE_SECONDS = 60.0
"""Inactivity limit on body reads, relays and flushes after a request head (read at each use)."""
_MAX_INTERIM = 16
_BUFFER_LIMIT = 1 << 20
"""Request bodies up to this size are read whole first, which makes the request retryable."""
_SMALL_BODY = 64 * 1024
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
_REASONS = {400: b"Bad Request", 431: b"Request Header Fields Too Large", 501: b"Not Implemented"}
_REASONS |= {502: b"Bad Gateway", 503: b"Service Unavailable", 505: b"HTTP Version Not Supported"}


class _LostError(Exception):
    """The upstream failed after the request went out and before a complete answer head (and small body)
    arrived; `answered` says whether any byte of an answer came back."""

    def __init__(self, detail: str, *, answered: bool) -> None:
        super().__init__(detail)
        self.answered = answered


class _ClientProtocolError(ProtocolError):
    """The client's own message was malformed (found while relaying it): the client gets `status`."""


class _GatewayError(Exception):
    """The request could not be forwarded; the message is the 502's detail."""


class Proxy:
    """Holds the backends and the routing table; serves clients on one listening socket."""

    def __init__(self) -> None:
        self._backends: dict[str, Backend] = {}
        self._table: RouteTable[Backend] = RouteTable()
        self._weights: dict[str, int] = {}
        self._clients: dict[asyncio.StreamWriter, asyncio.Task[None]] = {}
        self._server: asyncio.Server | None = None

    # --- control (called from the supervisor, on the proxy's event loop) ----------------------

    def add_backend(self, version: str, *ports: int) -> None:
        """Serve `version` from its replicas on `ports` (replica i on ports[i]). Idempotent."""
        current = self._backends.get(version)
        if current is not None and current.ports == ports and not current.closed:
            return
        self._backends[version] = Backend(version, ports)
        if current is not None:
            current.close()
            self.route(self.weights())

    def mark_down(self, version: str, index: int) -> None:
        """The supervisor saw replica `index` of `version` exit: send nothing to it for a while."""
        backend = self._backends.get(version)
        if backend is not None and index < len(backend.upstreams):
            backend.upstreams[index].mark_down()

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

    async def serve_socket(self, sock: socket.socket) -> None:
        """Serve clients on a socket that already listens (inherited by the proxy process)."""
        self._server = await asyncio.start_server(self._serve_client, sock=sock, backlog=1024)

    def stop_accepting(self) -> None:
        """Close the listening socket; connections already open go on until they end."""
        if self._server is not None:
            self._server.close()

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
            body = await read_body(reader, request.content_length, _IO_IDLE_SECONDS)
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
        """Forward one request to a replica of `backend` and its answer back; `body` None means stream it."""
        try:
            upstream, up_reader, up_writer, response, small_body = await _forward(request, body, backend, reader)
        except _GatewayError as exc:
            return await _bad_gateway(writer, request, body, str(exc))
        close_delimited = response.content_length is None and not response.chunked
        keep = request.keep_alive and not close_delimited
        extra = b"" if keep and request.version == b"HTTP/1.1" else _connection_header(keep)
        # A small body goes out with the head: the client gets one send() (not two).
        head = build_head(response.start, response.headers, extra) + small_body
        length = response.content_length
        idle = _IO_IDLE_SECONDS
        try:
            writer.write(head)
            if response.chunked:
                await relay_chunked(up_reader, writer, idle)
            elif length and length > _SMALL_BODY:
                await relay_fixed(up_reader, writer, length, idle)
            elif close_delimited:
                await relay_until_eof(up_reader, writer, idle)
            async with asyncio.timeout(idle):
                await writer.drain()
        except BaseException:
            # Half an answer went out: neither connection can carry another message.
            up_writer.close()
            raise
        if response.keep_alive and not close_delimited:
            upstream.park(up_reader, up_writer)
        else:
            up_writer.close()
        return keep


_Forwarded = tuple[Upstream, asyncio.StreamReader, asyncio.StreamWriter, Head, bytes]


async def _forward(request: Head, body: bytes | None, backend: Backend, reader: asyncio.StreamReader) -> _Forwarded:
    """Send the request to a replica of `backend`; return the replica, the connection, the answer's head
    and its body when small. Moves on to other replicas as the module docstring says. Raises _GatewayError."""
    upstream_head = build_head(request.start, request.headers)
    excluded: set[Upstream] = set()
    resent = False
    failure = f"release {backend.version} has no replica to send to"
    while (upstream := backend.pick(excluded)) is not None:
        try:
            up_reader, up_writer, reused = await upstream.connect()
        except OSError as exc:
            upstream.mark_down()
            excluded.add(upstream)
            failure = f"{upstream.name}: {exc}"
            continue
        try:
            response, small_body = await _ask(request, upstream_head, body, reader, up_reader, up_writer)
        except _LostError as exc:
            up_writer.close()
            failure = f"{upstream.name} {exc}"
            if resent or body is None or request.method not in _IDEMPOTENT:
                raise _GatewayError(failure) from exc
            resent = True
            if reused:
                upstream.flush()  # its other idle connections may well be dead too
            # A dying replica can still accept connections for a moment: resend elsewhere when there is
            # an elsewhere; a lone replica gets a fresh connection (its idle one had merely timed out).
            if not reused or len(backend.upstreams) > 1:
                excluded.add(upstream)
            continue
        except _ClientProtocolError:
            up_writer.close()
            raise
        except (OSError, ProtocolError) as exc:
            up_writer.close()
            raise _GatewayError(f"{upstream.name} {exc!r}") from exc
        return upstream, up_reader, up_writer, response, small_body
    raise _GatewayError(failure)


async def _ask(
    request: Head,
    upstream_head: bytes,
    body: bytes | None,
    reader: asyncio.StreamReader,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> tuple[Head, bytes]:
    """Send the request on one upstream connection; read the answer's head, and its body if small.

    Interim (1xx) answers are read and dropped. Raises _LostError when the connection failed before
    that much arrived, ProtocolError for a malformed answer (_ClientProtocolError for a malformed
    streamed request body), TimeoutError or OSError otherwise.
    """
    try:
        if body is None:
            up_writer.write(upstream_head)
            await _relay_request_body(request, reader, up_writer)
        else:
            up_writer.write(upstream_head + body)
        async with asyncio.timeout(_IO_IDLE_SECONDS):
            await up_writer.drain()
    except ConnectionError as exc:
        raise _LostError(repr(exc), answered=False) from exc
    except PeerClosedError as exc:
        raise _LostError(repr(exc), answered=True) from exc
    interim = 0
    while True:
        try:
            async with asyncio.timeout(_UPSTREAM_SECONDS):
                raw = await read_head(up_reader)
        except ConnectionError as exc:
            raise _LostError(repr(exc), answered=interim > 0) from exc
        except PeerClosedError as exc:
            raise _LostError(repr(exc), answered=True) from exc
        if raw is None:
            raise _LostError("closed the connection without answering", answered=interim > 0)
        response = parse_response(raw, request.method)
        if not 100 <= response.status < 200:
            break
        if response.status == 101:
            raise ProtocolError("answered 101 Switching Protocols, which the proxy does not support", 502)
        interim += 1
        if interim > _MAX_INTERIM:
            raise ProtocolError(f"sent more than {_MAX_INTERIM} interim answers", 502)
    length = response.content_length
    if not length or length > _SMALL_BODY:
        return response, b""
    try:
        return response, await read_body(up_reader, length, _IO_IDLE_SECONDS)
    except TimeoutError:
        raise
    except (OSError, PeerClosedError) as exc:
        raise _LostError(f"cut its answer: {exc!r}", answered=True) from exc


async def _relay_request_body(request: Head, reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
    try:
        if request.chunked:
            await relay_chunked(reader, up_writer, _IO_IDLE_SECONDS, status=400)
        else:
            await relay_fixed(reader, up_writer, request.content_length or 0, _IO_IDLE_SECONDS)
    except ProtocolError as exc:
        # Only the client's chunked framing is checked here: the client gets the 400.
        raise _ClientProtocolError(str(exc), exc.status) from exc


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
    async with asyncio.timeout(_IO_IDLE_SECONDS):
        await writer.drain()
