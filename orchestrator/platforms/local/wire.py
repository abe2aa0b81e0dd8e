"""HTTP/1.1 framing for the proxy around llhttp (through `httptools`): which headers a hop forwards,
how a message is re-framed, and the proxy's own answers.

llhttp does the parsing (heads, Content-Length, chunked bodies, trailers) and refuses what smuggling
lives on: both Transfer-Encoding and Content-Length, duplicate or list-valued Content-Length, obs-fold,
bare CR or LF, NUL, header names that are not tokens, bad or overflowing chunk sizes. This module adds
what a proxy needs on top (RFC 9110 §7.6.1, RFC 9112 §6): Connection tokens naming Content-Length,
Transfer-Encoding or Host are refused (they would make a hop drop the very header the message was
framed by), a transfer coding other than `chunked` is a 501, and hop-by-hop headers are dropped.

Bodies are never passed through blind: the proxy strips every framing header and writes its own,
`Content-Length` for a body it holds whole, its own chunking otherwise. So the next hop frames each
message exactly as the proxy did, whatever it makes of chunked requests (Python's `http.server` does not
read them at all, and would take the chunks for a second request).
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import NamedTuple

__all__ = [
    "CONTINUE",
    "LAST_CHUNK",
    "ProtocolError",
    "Scanned",
    "answer",
    "chunk",
    "request_head",
    "response_head",
    "scan",
]

Header = tuple[bytes, bytes]

# Headers that describe one connection, never forwarded (RFC 9110 §7.6.1). Expect is not hop-by-hop,
# but the proxy answers `100-continue` itself, so the upstream must not wait for it. The framing
# headers are dropped too: the proxy writes its own.
_DROPPED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"upgrade",
        b"proxy-authenticate",
        b"expect",
        b"content-length",
        b"transfer-encoding",
    }
)
_FRAMING_TOKENS = frozenset({b"content-length", b"transfer-encoding", b"host"})
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class ProtocolError(Exception):
    """A malformed or refused message; `status` is what a client should be told."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Scanned(NamedTuple):
    """A head's headers as a hop forwards them, and what they say about the message."""

    lines: bytes
    """The end-to-end header lines, formatted (less hop-by-hop, Connection-named and framing headers)."""
    framing: bytes
    """The framing header lines as they came (an answer to HEAD passes them on)."""
    length: int | None
    chunked: bool
    expects_continue: bool


_PLAIN_TOKENS = frozenset({b"close", b"keep-alive"})
_KEPT, _LENGTH, _CODING, _CONNECTION, _EXPECT, _HOP = range(6)
_KIND = {name: _HOP for name in _DROPPED} | {
    b"content-length": _LENGTH,
    b"transfer-encoding": _CODING,
    b"connection": _CONNECTION,
    b"expect": _EXPECT,
}


def scan(headers: Sequence[Header]) -> Scanned:
    """One pass over a head's headers (the hot path: most heads name no header in Connection).

    Raises ProtocolError for a Connection header naming a framing header, or a transfer coding other
    than plain `chunked` (501). llhttp has refused conflicting or malformed lengths already.
    """
    # Flat lists joined once: cheaper per header than formatting each line.
    lines: list[bytes] = []
    framing: list[bytes] = []
    tokens: set[bytes] | None = None
    length: int | None = None
    chunked = False
    expects_continue = False
    for name, value in headers:
        kind = _KIND.get(name.lower(), _KEPT)
        if kind == _KEPT:
            lines += (name, b": ", value, b"\r\n")
        elif kind == _LENGTH:
            length = int(value)
            framing += (name, b": ", value, b"\r\n")
        elif kind == _CODING:
            if chunked or value.strip().lower() != b"chunked":
                raise ProtocolError(f"transfer coding {value[:40]!r} is not supported: send chunked or a length", 501)
            chunked = True
            framing += (name, b": ", value, b"\r\n")
        elif kind == _CONNECTION:
            lowered = value.lower()
            if lowered not in _PLAIN_TOKENS:
                tokens = (tokens or set()) | {t.strip() for t in lowered.split(b",")}
        elif kind == _EXPECT:
            expects_continue = value.strip().lower() == b"100-continue"
    if tokens is not None:
        named = tokens & _FRAMING_TOKENS
        if named:
            raise ProtocolError(f"Connection header names {sorted(named)!r}")
        if not tokens <= _PLAIN_TOKENS:
            # Headers the Connection header names are hop-by-hop too (RFC 9110 §7.6.1).
            dropped = _DROPPED | tokens
            lines = [b"%s: %s\r\n" % (n, v) for n, v in headers if n.lower() not in dropped]
    return Scanned(b"".join(lines), b"".join(framing), length, chunked, expects_continue)


def request_head(method: bytes, target: bytes, lines: bytes, framing: bytes) -> bytes:
    """A request head for the upstream, always HTTP/1.1; `lines` and `framing` are formatted header lines."""
    return b"%s %s HTTP/1.1\r\n%s%s\r\n" % (method, target, lines, framing)


def response_head(status: int, reason: bytes, lines: bytes, framing: bytes) -> bytes:
    reason = reason or _REASONS.get(status, b"Unknown")
    return b"HTTP/1.1 %d %s\r\n%s%s\r\n" % (status, reason, lines, framing)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def answer(status: int, message: str, *, keep: bool) -> bytes:
    """The proxy's own plain-text answer."""
    body = (message + "\n").encode("utf-8", "replace")
    connection = b"keep-alive" if keep else b"close"
    head = b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n" % (status, _REASONS.get(status, b"Error"))
    return head + b"Content-Length: %d\r\nConnection: %s\r\n\r\n%s" % (len(body), connection, body)
