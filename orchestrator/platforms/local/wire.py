"""HTTP/1.1 message framing for the proxy: heads, hop-by-hop headers, Content-Length and chunked bodies.

Hand-written rather than h11 because a proxy needs only the framing (where a message ends and
whether the connection survives it), not h11's event objects and full validation; this keeps
the per-request cost low on the hot path. Framing is strict where smuggling lives: a request
with both Transfer-Encoding and Content-Length, conflicting lengths, or a transfer coding
other than chunked is refused (RFC 9112 §6.1, §6.3).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

__all__ = [
    "Head",
    "PeerClosedError",
    "ProtocolError",
    "build_head",
    "parse_request",
    "parse_response",
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


def _parse(raw: bytes) -> tuple[Head, set[bytes]]:
    lines = raw[:-4].split(b"\r\n")
    head = Head(start=lines[0], version=b"", headers=[])
    tokens: set[bytes] = set()
    lengths: set[bytes] = set()
    codings: list[bytes] = []
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or line[:1] in b" \t":
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
    # Drop hop-by-hop headers and any header the Connection header names.
    head.headers = [(n, v) for n, v in headers if n.lower() not in _HOP_BY_HOP and n.lower() not in tokens]
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


async def relay_fixed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, length: int) -> None:
    """Copy exactly `length` body bytes."""
    while length > 0:
        data = await reader.read(min(length, _CHUNK))
        if not data:
            raise PeerClosedError(f"connection closed with {length} body bytes missing")
        writer.write(data)
        length -= len(data)
        if writer.transport.get_write_buffer_size() > _CHUNK:
            await writer.drain()


async def relay_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy a chunked body as it is (sizes, extensions, trailers), checking its framing."""
    try:
        while True:
            line = await reader.readuntil(b"\r\n")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"invalid chunk size {size_text[:20]!r}", 502) from None
            writer.write(line)
            if size == 0:
                while True:
                    trailer = await reader.readuntil(b"\r\n")
                    writer.write(trailer)
                    if trailer == b"\r\n":
                        return
            await relay_fixed(reader, writer, size)
            if await reader.readexactly(2) != b"\r\n":
                raise ProtocolError("chunk data not followed by CRLF", 502)
            writer.write(b"\r\n")
    except asyncio.IncompleteReadError as exc:
        raise PeerClosedError("connection closed inside a chunked body") from exc
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError("chunk header line too long", 502) from exc


async def relay_until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy a close-delimited body."""
    while data := await reader.read(_CHUNK):
        writer.write(data)
        if writer.transport.get_write_buffer_size() > _CHUNK:
            await writer.drain()
