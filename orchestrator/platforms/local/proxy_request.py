"""A request as the proxy's client side read it (by llhttp's callbacks, or at once by `fast_path`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.platforms.local.exchange import Exchange
    from orchestrator.platforms.local.fast_path import RequestHead

__all__ = ["Request"]

Header = tuple[bytes, bytes]
_new = object.__new__


class Request:
    """A request as read so far; `body` holds what has not been sent upstream yet."""

    __slots__ = (
        "body",
        "body_size",
        "chunked",
        "complete",
        "exchange",
        "framed",
        "framing",
        "head_done",
        "headers",
        "keep_alive",
        "method",
        "pin_headers",
        "raw_headers",
        "set_cookie",
        "streamed",
        "target",
        "version_11",
        "wire",
    )

    def __init__(self) -> None:
        self.method = b""
        self.target = b""
        self.raw_headers: list[Header] = []
        self.pin_headers: list[Header] | tuple[()] = ()
        """The raw header fields, kept only while sticky sessions need them to find a pin."""
        self.set_cookie = b""
        """A `Set-Cookie` line pinning the client, for the answer (sticky sessions by cookie)."""
        self.headers = b""
        """The end-to-end header lines, formatted for the upstream."""
        self.framing = b""
        self.head_done = False
        self.framed = False
        """It came with a Content-Length or chunked: it goes on with a Content-Length (or chunks)."""
        self.chunked = False
        self.streamed = False
        self.keep_alive = True
        self.version_11 = True
        self.complete = False
        self.body: list[bytes] = []
        self.body_size = 0
        self.exchange: Exchange | None = None
        self.wire = b""
        """The head as it goes upstream, when known from the start (see `plain`)."""

    @classmethod
    def plain(cls, head: RequestHead, data: bytes) -> Request:
        """The whole request `data`, read at once (see `fast_path`): body in hand, nothing left to read.
        Every field is set here once (not first by `__init__`): this is the hot path."""
        request = _new(cls)
        request.method = head.method
        request.target = head.target
        request.raw_headers = []
        request.pin_headers = ()
        request.set_cookie = b""
        request.headers = head.lines
        request.framing = b""
        request.head_done = True
        request.framed = head.framed
        request.chunked = False
        request.streamed = False
        request.keep_alive = head.keep_alive
        request.version_11 = head.version_11
        request.complete = True
        request.body = [data[head.size :]] if head.length else []
        request.body_size = head.length
        request.exchange = None
        request.wire = head.upstream
        return request
