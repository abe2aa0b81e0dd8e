"""HTTP/1.1 message framing for the proxy: heads, hop-by-hop headers, Content-Length and chunked bodies.

Hand-written rather than h11 because a proxy needs only the framing (where a message ends and
whether the connection survives it), not h11's event objects and full validation; this keeps
the per-request cost low on the hot path. Framing is strict where smuggling lives: a request
with both Transfer-Encoding and Content-Length, conflicting lengths, or a transfer coding
other than chunked is refused (RFC 9112 §6.1, §6.3); so are bare CR, LF or NUL inside a head,
header names that are not tokens, chunk sizes that are not 1-16 hex digits, and a Connection
header naming Content-Length, Transfer-Encoding or Host (it would make the proxy drop the very
header it framed the message by). The framing headers are forwarded in one canonical form, so
the next hop frames the message exactly as the proxy did.

The relays take an inactivity `timeout` (seconds, None for none): each read or flush must make
progress within it, else TimeoutError.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

__all__ = [
    "Head",
    "PeerClosedError",
    "ProtocolError",
    "build_head",
    "parse_request",
    "parse_response",
    "read_body",
    "read_head",
    "relay_chunked",
    "relay_fixed",
    "relay_until_eof",
]

# Headers that describe one connection, never forwarded (RFC 9110 §7.6.1). Expect is not
# hop-by-hop, but the proxy answers `100-continue` itself, so the upstream must not wait for it.
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade", b"proxy-authenticate", b"expect"}
)
_CHUNK = 64 * 1024
# RFC 9110 §5.6.2 token; RFC 9112 §7.1 chunk-size (at most 16 hex digits: 64 bits).
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_FRAMING_TOKENS = frozenset({b"content-length", b"transfer-encoding", b"host"})


class ProtocolError(Exception):
    """A malformed message; `status` is what a client should be told."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class PeerClosedError(Exception):
    """The peer closed the connection before the message was complete."""


@dataclass(slots=True)
class Head:
    """A parsed request or response head; `headers` keep their original case and order."""

    start: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    method: bytes = b""
    status: int = 0
    content_length: int | None = None
    chunked: bool = False
    keep_alive: bool = True
    expects_continue: bool = False


async def read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The raw head up to and including the blank line, or None on EOF before any byte."""
    try:
        data = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise PeerClosedError("connection closed inside a message head") from exc
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError("message head too large", 431) from exc
    # RFC 9112 §2.2: ignore empty lines before a request line.
    return data.lstrip(b"\r\n")


def _has_bare_control(text: bytes) -> bool:
    """A CR or LF that is not part of a CRLF, or a NUL."""
    crlf = text.count(b"\r\n")
    return b"\0" in text or text.count(b"\r") != crlf or text.count(b"\n") != crlf


def _parse(raw: bytes) -> tuple[Head, set[bytes]]:
    text = raw[:-4]
    if _has_bare_control(text):
        raise ProtocolError("bare CR, LF or NUL in a message head")
    lines = text.split(b"\r\n")
    head = Head(start=lines[0], version=b"", headers=[])
    tokens: set[bytes] = set()
    lengths: set[bytes] = set()
    codings: list[bytes] = []
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or _TOKEN.fullmatch(name) is None:
            raise ProtocolError(f"malformed header line {line[:60]!r}")
        value = value.strip()
        lower = name.lower()
        if lower == b"content-length":
            lengths.update(v.strip() for v in value.split(b","))
        elif lower == b"transfer-encoding":
            codings.extend(c.strip().lower() for c in value.split(b",") if c.strip())
        elif lower == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
        elif lower == b"expect":
            head.expects_continue = value.lower() == b"100-continue"
        headers.append((name, value))
    if codings:
        if codings[-1] != b"chunked":
            raise ProtocolError("transfer coding must end with chunked", 501)
        head.chunked = True
        if lengths:
            raise ProtocolError("both Transfer-Encoding and Content-Length")
    elif lengths:
        if len(lengths) != 1 or not next(iter(lengths)).isdigit():
            raise ProtocolError(f"invalid Content-Length {sorted(lengths)!r}")
        head.content_length = int(next(iter(lengths)))
    if not tokens.isdisjoint(_FRAMING_TOKENS):
        raise ProtocolError(f"Connection header names {sorted(tokens & _FRAMING_TOKENS)!r}")
    # Drop hop-by-hop headers and any header the Connection header names; forward the framing
    # headers as one canonical header each, in the place of the first (RFC 9112 §6.3).
    kept: list[tuple[bytes, bytes]] = []
    framed = False
    for n, v in headers:
        lower = n.lower()
        if lower in _HOP_BY_HOP or lower in tokens:
            continue
        if lower == b"content-length" or lower == b"transfer-encoding":
            if framed:
                continue
            framed = True
            if head.chunked:
                n, v = b"Transfer-Encoding", b", ".join(codings)
            else:
                n, v = b"Content-Length", b"%d" % head.content_length if head.content_length is not None else v
        kept.append((n, v))
    head.headers = kept
    return head, tokens


def _is_persistent(version: bytes, tokens: set[bytes]) -> bool:
    # HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless told to keep it.
    if version == b"HTTP/1.1":
        return b"close" not in tokens
    return b"keep-alive" in tokens and b"close" not in tokens


def parse_request(raw: bytes) -> Head:
    """Parse a request head; raises ProtocolError (status 400, 501 or 505)."""
    head, tokens = _parse(raw)
    parts = head.start.split(b" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise ProtocolError(f"malformed request line {head.start[:80]!r}")
    head.method, head.version = parts[0], parts[2]
    if head.version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise ProtocolError(f"unsupported HTTP version {head.version!r}", 505)
    head.keep_alive = _is_persistent(head.version, tokens)
    return head


def parse_response(raw: bytes, request_method: bytes) -> Head:
    """Parse a response head; one with neither length nor chunking is read until close (`content_length` None)."""
    head, tokens = _parse(raw)
    parts = head.start.split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or not parts[1].isdigit():
        raise ProtocolError(f"malformed status line {head.start[:80]!r}", 502)
    head.version, head.status = parts[0], int(parts[1])
    head.keep_alive = _is_persistent(head.version, tokens)
    if request_method == b"HEAD" or head.status in (204, 304) or 100 <= head.status < 200:
        head.content_length, head.chunked = 0, False
    return head


def build_head(start: bytes, headers: list[tuple[bytes, bytes]], extra: bytes = b"") -> bytes:
    """Serialise a head; `extra` holds already-formatted header lines (each ending in CRLF)."""
    return b"".join([start, b"\r\n", *(n + b": " + v + b"\r\n" for n, v in headers), extra, b"\r\n"])


def _progress(deadline: asyncio.Timeout, timeout: float | None) -> None:
    if timeout is not None:
        deadline.reschedule(asyncio.get_running_loop().time() + timeout)


async def read_body(reader: asyncio.StreamReader, length: int, timeout: float | None = None) -> bytes:
    """Read exactly `length` body bytes, each read making progress within `timeout`."""
    parts: list[bytes] = []
    async with asyncio.timeout(timeout) as deadline:
        while length > 0:
            data = await reader.read(length)
            if not data:
                raise PeerClosedError(f"connection closed with {length} body bytes missing")
            parts.append(data)
            length -= len(data)
            _progress(deadline, timeout)
    return b"".join(parts)


async def _copy(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    length: int,
    deadline: asyncio.Timeout,
    timeout: float | None,
) -> None:
    while length > 0:
        data = await reader.read(min(length, _CHUNK))
        if not data:
            raise PeerClosedError(f"connection closed with {length} body bytes missing")
        writer.write(data)
        length -= len(data)
        if writer.transport.get_write_buffer_size() > _CHUNK:
            _progress(deadline, timeout)
            await writer.drain()
        _progress(deadline, timeout)


async def relay_fixed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, length: int, timeout: float | None = None
) -> None:
    """Copy exactly `length` body bytes."""
    async with asyncio.timeout(timeout) as deadline:
        await _copy(reader, writer, length, deadline, timeout)


async def relay_chunked(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float | None = None, status: int = 502
) -> None:
    """Copy a chunked body as it is (sizes, extensions, trailers), checking its framing; a framing error
    raises ProtocolError with `status`."""
    try:
        async with asyncio.timeout(timeout) as deadline:
            while True:
                line = await reader.readuntil(b"\r\n")
                _progress(deadline, timeout)
                size_text = line[:-2].split(b";", 1)[0].rstrip(b" \t")
                if _CHUNK_SIZE.fullmatch(size_text) is None or _has_bare_control(line[:-2]):
                    raise ProtocolError(f"invalid chunk size line {line[:20]!r}", status)
                size = int(size_text, 16)
                writer.write(line)
                if size == 0:
                    while True:
                        trailer = await reader.readuntil(b"\r\n")
                        _progress(deadline, timeout)
                        if _has_bare_control(trailer[:-2]):
                            raise ProtocolError("bare CR, LF or NUL in a trailer", status)
                        writer.write(trailer)
                        if trailer == b"\r\n":
                            return
                await _copy(reader, writer, size, deadline, timeout)
                if await reader.readexactly(2) != b"\r\n":
                    raise ProtocolError("chunk data not followed by CRLF", status)
                writer.write(b"\r\n")
    except asyncio.IncompleteReadError as exc:
        raise PeerClosedError("connection closed inside a chunked body") from exc
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError("chunk header line too long", status) from exc


async def relay_until_eof(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float | None = None
) -> None:
    """Copy a close-delimited body."""
    async with asyncio.timeout(timeout) as deadline:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            if writer.transport.get_write_buffer_size() > _CHUNK:
                _progress(deadline, timeout)
                await writer.drain()
            _progress(deadline, timeout)
