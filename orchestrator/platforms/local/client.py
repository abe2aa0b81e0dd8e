"""One client connection to the proxy: llhttp parses its requests (`fast_path` a whole plain one
at once), each becomes an `Exchange`.

Every request is routed on its own (DESIGN.md §5, trap 1): the release is picked from the current
routing table when the request is ready to go (its body in hand, or its head when the body is
streamed), so after a switch the next request on an existing keep-alive connection goes to the new
release, while requests already in flight finish on the old one. Pipelined requests wait their turn.

Bounds, each per connection: a head must arrive whole within `Limits.head_seconds` of its first
byte and be at most `Limits.max_head_bytes`; an idle keep-alive connection closes after
`Limits.idle_seconds`; a body must make progress every `Limits.io_seconds`, as must an answer being
relayed; an upstream has `Limits.upstream_seconds` to start its answer. A body up to
`Limits.max_buffered_body` is read whole before it is sent (which makes the request resendable and
lets it go out with a Content-Length), a larger one is streamed with flow control, so a connection
holds at most about that much. The deadlines are one number per connection and one timer that is
moved only when it fires early, so a request costs no timer of its own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from orchestrator.platforms.local.exchange import Exchange
from orchestrator.platforms.local.fast_path import MAX_FAST, read_request
from orchestrator.platforms.local.proxy_request import Request
from orchestrator.platforms.local.wire import CONTINUE, ProtocolError, answer, scan

if TYPE_CHECKING:
    from orchestrator.platforms.local.proxy import Proxy

__all__ = ["ClientConnection", "Request"]

Header = tuple[bytes, bytes]
_MAX_HEADERS = 128
_LINGER_SECONDS = 1.0


class ClientConnection(asyncio.Protocol):
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.limits = proxy.limits
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpRequestParser(self)
        self._parsing: Request | None = None
        self._head_bytes = 0
        self._requests: deque[Request] = deque()
        self._exchange: Exchange | None = None
        self._refused: ProtocolError | None = None
        self._upgraded = False
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._read_paused = False
        self._lingering = False
        self._chunk = b""
        self._fast_size = min(MAX_FAST, self.limits.max_head_bytes)

    # --- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self._set_deadline(self.limits.idle_seconds)
        self._arm(self.loop.time())
        if self.proxy.admit(self):
            return
        # Refused: say why, then read and drop what the client sends for a moment, so that the close
        # does not reset the connection (and the answer with it) under a request not yet read.
        self._lingering = True
        self.transport.write(answer(503, "the proxy is at its connection limit: try again", keep=False))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._set_deadline(_LINGER_SECONDS)
        if self._timer is not None:
            self._timer.cancel()
        self._arm(self.loop.time())

    def data_received(self, data: bytes) -> None:
        if self.closed or self._refused is not None or self._upgraded or self._lingering:
            return
        starting = self._parsing is None and not self._requests
        if starting and self.proxy.sticky is None:
            # Nothing half-read and nothing waiting: a whole plain request needs no llhttp (`fast_path`).
            head = read_request(data, self._fast_size, self.limits.max_buffered_body)
            if head is not None:
                self._requests.append(Request.plain(head, data))
                self.proxy.busy(self)
                self._start_next()  # sets the deadline as it sends (`request_sent`) or connects
                return
        self._chunk = data
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._refuse(cause if isinstance(cause, ProtocolError) else ProtocolError(f"malformed request: {cause}"))
            return
        except httptools.HttpParserUpgrade:
            # The request was read; the Upgrade header is not forwarded, and what follows is not HTTP.
            self._upgraded = True
            return
        except httptools.HttpParserError as exc:
            self._refuse(ProtocolError(f"malformed request: {exc}"))
            return
        if self._parsing is not None and not self._parsing.head_done:
            if starting:
                # A head begun and not finished: from its first byte it must arrive in time.
                self._set_deadline(self.limits.head_seconds)
                self.proxy.heading(self)
            # llhttp keeps a partial head in memory: bound it before it completes.
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(ProtocolError("request head too large", 431))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.proxy.leave(self)
        exchange, self._exchange = self._exchange, None
        if exchange is not None:
            exchange.abort()

    def pause_writing(self) -> None:
        if self._exchange is not None:
            self._exchange.on_client_paused(True)

    def resume_writing(self) -> None:
        if self._exchange is not None:
            self._set_deadline(self.limits.io_seconds)
            self._exchange.on_client_paused(False)

    # --- llhttp callbacks -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._parsing = Request()
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        request = self._parsing
        assert request is not None
        request.target += url
        if len(request.target) > self.limits.max_head_bytes:
            raise ProtocolError("request target too long", 414)

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self._parsing
        assert request is not None
        if request.head_done:
            return  # a trailer: the proxy sends its own framing, without trailers
        request.raw_headers.append((name, value))
        if len(request.raw_headers) > _MAX_HEADERS:
            raise ProtocolError(f"more than {_MAX_HEADERS} header fields", 431)

    def on_headers_complete(self) -> None:
        request = self._parsing
        assert request is not None
        parser = self._parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise ProtocolError(f"unsupported HTTP version {version!r}", 505)
        request.method = parser.get_method()
        if request.method == b"CONNECT":
            raise ProtocolError("the proxy does not tunnel (CONNECT)", 405)
        if self._head_bytes + len(self._chunk) > self.limits.max_head_bytes:
            # The head may have come whole in one large read: only then is it worth measuring.
            size = len(request.target) + sum(len(n) + len(v) + 4 for n, v in request.raw_headers)
            if size > self.limits.max_head_bytes:
                raise ProtocolError("request head too large", 431)
        scanned = scan(request.raw_headers)
        length = scanned.length
        request.chunked = scanned.chunked
        request.headers = scanned.lines
        if self.proxy.sticky is not None:
            request.pin_headers = request.raw_headers
        request.raw_headers = []
        request.head_done = True
        request.framed = request.chunked or length is not None
        request.keep_alive = parser.should_keep_alive()
        request.version_11 = version == "1.1"
        if length is not None and length > self.limits.max_buffered_body:
            request.streamed = True
            request.framing = b"Content-Length: %d\r\n" % length
        self._requests.append(request)
        self.proxy.busy(self)
        self._deadline = self.loop.time() + self.limits.io_seconds
        if scanned.expects_continue and (request.chunked or length) and len(self._requests) == 1:
            self.write(CONTINUE)
        if request.streamed:
            self._start_next()

    def on_body(self, body: bytes) -> None:
        request = self._parsing
        assert request is not None
        self._deadline = self.loop.time() + self.limits.io_seconds
        exchange = request.exchange
        if exchange is not None and exchange.conn is not None:
            exchange.feed_body(body)
            return
        request.body.append(body)
        request.body_size += len(body)
        if request.body_size > self.limits.max_buffered_body:
            if not request.streamed:  # chunked: too long to hold, so it goes on in the proxy's chunks
                request.streamed = True
                self._start_next()
            if request.exchange is None or request.exchange.conn is None:
                self.pause_body(True)  # until it is our turn and the upstream connection is open

    def on_message_complete(self) -> None:
        request = self._parsing
        assert request is not None
        self._parsing = None
        request.complete = True
        if request.exchange is not None:
            request.exchange.end_body()
            if request.exchange.conn is not None:
                self._set_deadline(self.limits.upstream_seconds)
        elif not request.streamed:
            self._start_next()

    # --- exchanges ------------------------------------------------------------------------------

    def _start_next(self) -> None:
        """Start the oldest request if it is ready and nothing is in flight."""
        if self._exchange is not None or not self._requests or self.closed:
            return
        request = self._requests[0]
        if not (request.complete or request.streamed):
            return
        proxy = self.proxy
        if proxy.board is not None and proxy.board.generation() != proxy.generation:
            proxy.follow_board()  # a route call since the last request
        backend = proxy.pick() if proxy.sticky is None else proxy.pick_pinned(request)
        if backend is None:
            keep = request.keep_alive and request.complete
            self._requests.popleft()
            self.reply(503, "no release receives traffic yet: deploy one first", keep=keep)
            self._after(keep)
            return
        exchange = Exchange(self, request, backend)
        request.exchange = exchange
        self._exchange = exchange
        exchange.start()

    def request_sent(self, exchange: Exchange) -> None:
        """The head (and the body in hand) went upstream."""
        request = exchange.request
        if request.streamed and request.body:
            request.body = []  # the rest follows as it comes; a body held whole stays for a resend
        limits = self.limits
        self._deadline = self.loop.time() + (limits.upstream_seconds if request.complete else limits.io_seconds)
        if self._read_paused:
            self.pause_body(False)

    def exchange_done(self, exchange: Exchange, keep: bool) -> None:
        if self._exchange is not exchange:
            return
        self._exchange = None
        # Request and Exchange refer to each other: unlinked, both are freed now rather than by the
        # cyclic garbage collector, which would otherwise run every few hundred requests.
        exchange.request.exchange = None
        if self._requests and self._requests[0] is exchange.request:
            self._requests.popleft()
        self._after(keep and not self._upgraded)

    def _after(self, keep: bool) -> None:
        if self.closed:
            return
        if not keep:
            self.close()
            return
        if self._refused is not None and not self._requests:
            self.reply(self._refused.status, str(self._refused), keep=False)
            self.close()
            return
        if self._requests:
            self._set_deadline(self.limits.io_seconds)
            self._start_next()
        elif self._parsing is None:
            self._deadline = self.loop.time() + self.limits.idle_seconds
            self.proxy.idle(self)
        if self._read_paused:
            self.pause_body(False)

    # --- writing and closing --------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def progress(self) -> None:
        """An answer being relayed moved on: it has `Limits.io_seconds` again."""
        self._deadline = self.loop.time() + self.limits.io_seconds

    def reply(self, status: int, message: str, *, keep: bool) -> None:
        self.write(answer(status, message, keep=keep))

    def pause_body(self, paused: bool) -> None:
        if self.transport is None or self.closed or paused == self._read_paused:
            return
        self._read_paused = paused
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def close(self) -> None:
        """Close after what was written is flushed."""
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()

    def _refuse(self, error: ProtocolError) -> None:
        self._refused = error
        self._parsing = None
        self.pause_body(True)
        if self._exchange is None:
            self._requests.clear()
            self._after(True)

    # --- the one deadline -----------------------------------------------------------------------

    def _set_deadline(self, seconds: float) -> None:
        # The timer runs from connection_made to connection_lost: setting a deadline is one number.
        self._deadline = self.loop.time() + seconds

    def _arm(self, now: float) -> None:
        # Never further ahead than the shortest limit: any deadline set meanwhile is at least that far
        # away, so the timer fires in time for it without ever being cancelled and made anew.
        self._timer = self.loop.call_at(min(self._deadline, now + self.limits.shortest), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        now = self.loop.time()
        if now < self._deadline:
            self._arm(now)
            return
        exchange = self._exchange
        if exchange is not None:
            exchange.expire()
        else:
            self.abort()
