"""One request's trip through the proxy: pick a replica, send, relay the answer, or fail over.

A replica that fails a request before the client got any byte of the answer is replaced by another
replica of the same release, so one crashed replica costs no failed request:
- a refused (or timed-out) connection sent nothing, so any request moves on, and the replica is
  passed over for a while (see `upstream`; the supervisor also marks a replica that exited);
- a request sent but not answered (connection closed or reset before a complete small answer) is
  sent once more only if its method is idempotent (RFC 9110 §9.2.2: a POST may have run) and its body
  is still in hand. A non-idempotent request lost that way is a 502, even on a reused connection the
  release closed while idle; to keep that rare, pooled connections idle for more than
  `upstream.IDLE_REUSE_SECONDS` are not reused.
The resend goes to another replica (a dying replica can accept a connection after it reset another);
only a lone replica that failed on a reused connection gets a fresh one instead. Any other upstream
failure before the answer starts is a 502.

An answer is held until it is complete or larger than `SMALL_ANSWER`, then goes to the client in one
write with a Content-Length (whatever its framing upstream); a larger one is relayed as it comes, by its
length or in the proxy's own chunks. Interim 1xx answers are dropped (101 is a 502: the proxy forwards
no Upgrade).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from orchestrator.platforms.local.upstream import Backend, Upstream, UpstreamConnection
from orchestrator.platforms.local.wire import LAST_CHUNK, ProtocolError, chunk, request_head, response_head, scan

if TYPE_CHECKING:
    from orchestrator.platforms.local.client import ClientConnection
    from orchestrator.platforms.local.fast_path import AnswerHead
    from orchestrator.platforms.local.proxy_request import Request

__all__ = ["SMALL_ANSWER", "Exchange"]

SMALL_ANSWER = 64 * 1024
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
Header = tuple[bytes, bytes]


class Exchange:
    """Sends `request` to a replica of `backend` and relays the answer to `client`; the client calls
    `feed_body`/`end_body` for a body still arriving, and `abort` if it goes away."""

    __slots__ = (
        "_answered",
        "_began",
        "_close_delimited",
        "_connecting",
        "_excluded",
        "_failure",
        "_head",
        "_held",
        "_keep",
        "_kept",
        "_parts",
        "_reason",
        "_rechunk",
        "_resent",
        "_reused",
        "_status",
        "_up_keep",
        "backend",
        "client",
        "committed",
        "conn",
        "done",
        "request",
        "upstream",
    )

    def __init__(self, client: ClientConnection, request: Request, backend: Backend) -> None:
        self.client = client
        self.request = request
        self.backend = backend
        self.done = False
        self.committed = False
        """Some byte of the answer went to the client: failing now can only cut the connection."""
        self.upstream: Upstream | None = None
        self.conn: UpstreamConnection | None = None
        self._reused = False
        self._excluded: set[Upstream] | frozenset[Upstream] = frozenset()
        self._resent = False
        self._failure = ""
        self._connecting: asyncio.Task[UpstreamConnection] | None = None
        self._head: bytes | None = None
        self._parts: list[bytes] = []
        self._held = 0
        self._rechunk = False
        self._close_delimited = False
        self._up_keep = True
        self._keep = request.keep_alive
        self._status: int | None = None
        self._reason = b""
        self._kept = b""
        self._began = 0.0
        self._answered = 0
        """The status the client is answered with (0: none yet), for the backend's meter."""

    # --- sending --------------------------------------------------------------------------------

    def start(self) -> None:
        self._began = time.perf_counter()
        self.backend.inflight += 1  # Backend.begin, inlined: this is the hot path
        self._try_next()

    def _try_next(self) -> None:
        upstream = self.backend.pick(self._excluded)
        if upstream is None:
            self._gateway_error(self._failure or f"release {self.backend.version} has no replica to send to")
            return
        conn = upstream.take()
        if conn is not None:
            self._send(upstream, conn, reused=True)
            return
        self.upstream = upstream
        self.client.progress()  # the connect has its own timeout; the request gets the I/O deadline
        self._connecting = asyncio.get_running_loop().create_task(upstream.connect())
        self._connecting.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[UpstreamConnection]) -> None:
        self._connecting = None
        if task.cancelled():
            return
        upstream = self.upstream
        assert upstream is not None
        exc = task.exception()
        if exc is None:
            conn = task.result()
            if self.done:
                conn.close()
            else:
                self._send(upstream, conn, reused=False)
            return
        if self.done:
            return
        upstream.mark_down()
        self._excluded = self._excluded | {upstream}
        self._failure = f"{upstream.name}: {exc}"
        self._try_next()

    def _send(self, upstream: Upstream, conn: UpstreamConnection, *, reused: bool) -> None:
        request = self.request
        self.upstream, self.conn, self._reused = upstream, conn, reused
        if request.wire:
            # Read whole at once (`fast_path`): its head as it goes on is known, its body is in hand.
            message = request.wire + b"".join(request.body) if request.body else request.wire
            conn.send(self, message, request.method == b"HEAD")
            self.client.request_sent(self)
            return
        body = b"".join(request.body)
        if request.streamed:
            framing = b"Transfer-Encoding: chunked\r\nConnection: close\r\n" if request.chunked else request.framing
            if request.chunked and body:
                body = chunk(body)
            if request.complete and request.chunked:
                body += LAST_CHUNK
        elif request.framed:
            framing = b"Content-Length: %d\r\n" % len(body)
        else:
            framing = b""
        head = request_head(request.method, request.target, request.headers, framing)
        conn.send(self, head + body, request.method == b"HEAD")
        self.client.request_sent(self)

    def feed_body(self, data: bytes) -> None:
        """More of a streamed request body."""
        conn = self.conn
        if conn is not None and conn.transport is not None and not self.done:
            conn.transport.write(chunk(data) if self.request.chunked else data)

    def end_body(self) -> None:
        conn = self.conn
        if conn is not None and conn.transport is not None and not self.done and self.request.chunked:
            conn.transport.write(LAST_CHUNK)

    def on_upstream_paused(self, paused: bool) -> None:
        self.client.pause_body(paused)

    def on_client_paused(self, paused: bool) -> None:
        transport = self.conn.transport if self.conn is not None else None
        if transport is not None and not transport.is_closing():
            if paused:
                transport.pause_reading()
            else:
                transport.resume_reading()

    # --- the answer (called by the UpstreamConnection) ------------------------------------------

    def on_answer(self, head: AnswerHead, data: bytes) -> None:
        """A whole small answer read at once (see `fast_path`): relayed in one write. The most common
        end of an exchange, so `_finish` and `_end` are inlined for it (no connect pending, a conn held)."""
        if self.done:
            return
        self.done = True
        status = self._answered = head.status
        keep = self._keep
        request = self.request
        if keep and request.version_11 and not request.set_cookie:
            # One concatenation: cheaper than a join up to the largest answer taken here (`MAX_FAST`).
            self.client.write(head.whole + data[head.size :])
        else:
            body = memoryview(data)[head.size :]
            connection = self._connection(keep)
            self.client.write(b"".join((head.prefix, connection, request.set_cookie, b"\r\n", body)))
        backend = self.backend
        backend.inflight -= 1
        backend.meter.record(status, time.perf_counter() - self._began)
        conn, upstream = self.conn, self.upstream
        self.conn = None
        if conn is not None and upstream is not None:
            if head.keep_alive and not request.streamed:
                upstream.park(conn)
            else:
                conn.close()
        self.client.exchange_done(self, keep and request.complete)

    def on_head(self, status: int, reason: bytes, headers: list[Header], keep_alive: bool) -> None:
        self._up_keep = keep_alive
        self._answered = status
        try:
            scanned = scan(headers)
        except ProtocolError as exc:
            raise ProtocolError(f"sent an answer the proxy cannot relay: {exc}", 502) from exc
        if self.request.method == b"HEAD" or status in (204, 304):
            # No body follows: the client learns what a GET would have had.
            framing = scanned.framing + self._connection(self._keep) + self.request.set_cookie
            self._head = response_head(status, reason, scanned.lines, framing)
            return
        length = scanned.length
        self._close_delimited = length is None and not scanned.chunked
        self._status, self._reason, self._kept = status, reason, scanned.lines
        if length is not None and length > SMALL_ANSWER:
            self._commit(b"Content-Length: %d\r\n" % length)

    def on_body(self, data: bytes) -> None:
        if self.committed:
            self.client.write(chunk(data) if self._rechunk else data)
            self.client.progress()
            return
        self._parts.append(data)
        self._held += len(data)
        if self._held > SMALL_ANSWER:
            if self.request.version_11:
                self._rechunk = True
                framing = b"Transfer-Encoding: chunked\r\n"
            else:
                self._keep = False  # an HTTP/1.0 client learns the end from the close
                framing = b""
            body, self._parts = b"".join(self._parts), []
            self._commit(framing)
            self.client.write(chunk(body) if self._rechunk else body)

    def on_complete(self, trailers: list[Header]) -> None:
        if self.done:
            return
        if self._head is not None:
            self.client.write(self._head)
        elif not self.committed:
            body = b"".join(self._parts)
            framing = b"Content-Length: %d\r\n" % len(body) + self._connection(self._keep) + self.request.set_cookie
            assert self._status is not None
            self.client.write(response_head(self._status, self._reason, self._kept, framing) + body)
        elif self._rechunk:
            self.client.write(b"0\r\n" + scan(trailers).lines + b"\r\n")
        self._finish(reusable=not self._close_delimited)

    def on_failed(self, error: Exception) -> None:
        """The answer was malformed (a ProtocolError) or could not be read."""
        if self.done:
            return
        if self.committed:
            self.abort()
        else:
            assert self.upstream is not None
            self._gateway_error(f"{self.upstream.name} {error}")

    def on_lost(self, exc: Exception | None) -> None:
        """The upstream connection closed before the answer was complete."""
        if self.done:
            return
        if self._close_delimited:
            self.on_complete([])
            return
        if self.committed:
            self.abort()
            return
        upstream = self.upstream
        assert upstream is not None
        answered = self._status is not None or self._head is not None
        if answered:
            detail = f"cut its answer ({exc!r})" if exc else "cut its answer"
        else:
            detail = f"lost the connection ({exc!r})" if exc else "closed the connection without answering"
        self._failure = f"{upstream.name} {detail}"
        request = self.request
        if self._resent or request.streamed or request.method not in _IDEMPOTENT:
            self._gateway_error(self._failure)
            return
        self._resent = True
        if self._reused:
            upstream.flush()  # its other idle connections may well be dead too
        # A dying replica can still accept connections for a moment: resend elsewhere when there is an
        # elsewhere; a lone replica gets a fresh connection (its idle one had merely timed out).
        if not self._reused or len(self.backend.upstreams) > 1:
            self._excluded = self._excluded | {upstream}
        self._reset_answer()
        self._try_next()

    # --- ends -----------------------------------------------------------------------------------

    def expire(self) -> None:
        """The client connection's deadline passed: answer 504 if nothing went out yet, else cut."""
        if self.done:
            return
        name = self.upstream.name if self.upstream is not None else f"release {self.backend.version}"
        if not self.committed and self.request.complete:
            self._keep = False
            self._gateway_error(f"{name} did not answer in time", status=504)
        else:
            self.abort()

    def abort(self) -> None:
        """End the exchange without an answer: both connections close."""
        if self.done:
            return
        self._keep = False
        self._answered = 0  # cut part-way: the client has no whole answer
        self._end()
        self.client.exchange_done(self, False)

    def _gateway_error(self, detail: str, status: int = 502) -> None:
        request = self.request
        # A streamed body may be half read: the connection's framing is lost, so it must close.
        keep = self._keep and request.complete and not request.streamed
        self._answered = status
        self._end()
        self.client.reply(status, f"{'bad gateway' if status == 502 else 'gateway timeout'}: {detail}", keep=keep)
        self.client.exchange_done(self, keep)

    def _finish(self, *, reusable: bool) -> None:
        conn, upstream = self.conn, self.upstream
        self.conn = None
        self._end()
        if conn is not None and upstream is not None:
            if reusable and self._up_keep and not self.request.streamed:
                if conn._feeding:
                    conn.park_after_feed = True  # parked once llhttp returns (see UpstreamConnection)
                else:
                    upstream.park(conn)
            else:
                conn.close()
        self.client.exchange_done(self, self._keep and self.request.complete)

    def _end(self) -> None:
        self.done = True
        self.backend.inflight -= 1  # Backend.end, inlined
        self.backend.meter.record(self._answered, time.perf_counter() - self._began)
        if self._connecting is not None:
            self._connecting.cancel()
        if self.conn is not None:
            self.conn.sink = None
            self.conn.close()
            self.conn = None

    def _commit(self, framing: bytes) -> None:
        self.committed = True
        assert self._status is not None
        framing += self._connection(self._keep) + self.request.set_cookie
        self.client.write(response_head(self._status, self._reason, self._kept, framing))

    def _connection(self, keep: bool) -> bytes:
        if keep and self.request.version_11:
            return b""
        return b"Connection: keep-alive\r\n" if keep else b"Connection: close\r\n"

    def _reset_answer(self) -> None:
        self._answered = 0
        self._head = None
        self._parts = []
        self._held = 0
        self._close_delimited = False
        self._status = None
