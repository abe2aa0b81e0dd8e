"""The common message read in one scan: a whole small request or answer in one read, in a strict subset
of HTTP/1.1 that llhttp reads the same way.

Most traffic is a keep-alive request with a small head and no body (or a Content-Length one), and a
small Content-Length answer, each arriving in one read. For those, a compiled pattern checks the whole
head at once, where llhttp would call back into Python once per header; the proxy's cost per request
is mostly such calls. Anything the pattern does not take is left to llhttp (`client`, `upstream`),
untouched: this module only ever says "this one is plain" or "not mine", never "malformed".

So the subset must be one llhttp reads the same way (`tests/platforms/local/test_fast_path.py` holds
the two to that): a request line with a common method, an origin-form target of RFC 3986 characters
and HTTP/1.0 or 1.1; header names that are tokens, a colon straight after them, values of visible
ASCII with spaces or tabs inside and nothing around them but leading spaces; CRLF line ends only.
Then, read from the headers: at most one Content-Length (digits only), no Transfer-Encoding, no
Expect, a Connection that is `keep-alive` or `close` alone, no other hop-by-hop header in a request
(an answer's `Keep-Alive` is dropped); and the read must end exactly where the message does (a
pipelined request, a body still arriving or an answer longer than it says go to llhttp).

What a head says is a function of its bytes alone, and clients and releases send the same heads over
and over (a client's request is often its last one again, a release's answers differ by their Date),
so the reading of recent heads is kept (`_Memo`): a head seen before costs a lookup. A request head not
seen before has its request line read alone and its header lines looked up in a memo of their own: a
client's requests that differ by their target alone (a client walking a site) share those. A memo holds a
bounded number of heads of bounded size, and forgets them all when full.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Generic, NamedTuple, TypeVar

__all__ = ["MAX_FAST", "AnswerHead", "RequestHead", "read_answer", "read_request"]

MAX_FAST = 16 * 1024
"""Larger reads go to llhttp (the answers taken here are well under `exchange.SMALL_ANSWER`)."""
_MAX_FIELDS = 128
_MEMO_HEADS = 256
_MEMO_HEAD_BYTES = 4096

# Possessive quantifiers: a line that fails fails at once, without backtracking over its bytes.
_FIELD = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]++:[ \t]*+(?:[\x21-\x7e]++(?:[ \t]++[\x21-\x7e]++)*+)?+\r\n"
_REQUEST_LINE = re.compile(
    rb"(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH) (/[-!$&'()*+,./0-9:;=?@A-Z_a-z~%]*+) HTTP/1\.([01])\r\n"
)
_FIELDS = re.compile(rb"(?:" + _FIELD + rb")*+\r\n")
"""A request's header lines and the blank line: after `_REQUEST_LINE`, the whole of a plain request's head."""
_ANSWER = re.compile(rb"HTTP/1\.([01]) ([2-5][0-9][0-9]) [\t \x21-\x7e]*+\r\n((?:" + _FIELD + rb")*+)\r\n")
_HOP_NAMES = (
    rb"connection|keep-alive|proxy-connection|te|upgrade|proxy-authenticate|expect|content-length|transfer-encoding"
)
_HOP_LINE = re.compile(rb"(?im)^(" + _HOP_NAMES + rb"):[ \t]*+([^\r]*+)\r\n")
"""The hop-by-hop and framing lines of a head already matched (so each is a well-formed line)."""
_LENGTH_DIGITS = 15
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class RequestHead(NamedTuple):
    method: bytes
    target: bytes
    lines: bytes
    """The end-to-end header lines, as they came (each a well-formed line)."""
    upstream: bytes
    """The head as the proxy sends it on (HTTP/1.1, its own Content-Length)."""
    size: int
    length: int
    """The body's Content-Length (0 without one)."""
    framed: bool
    """It had a Content-Length: it goes on with one."""
    keep_alive: bool
    version_11: bool


class _Fields(NamedTuple):
    """What a request's header lines (and the blank line after them) say."""

    lines: bytes
    """The end-to-end header lines, as they came."""
    framing: bytes
    """The Content-Length line the request goes on with (b"": none)."""
    length: int
    """-1: no Content-Length."""
    connection: int
    """1: Connection: keep-alive, 0: close, -1: none."""


class AnswerHead(NamedTuple):
    status: int
    prefix: bytes
    """The head for the client up to its Content-Length line; the Connection line and the blank line follow."""
    whole: bytes
    """The head for a client kept alive on HTTP/1.1 with no cookie to set (the common one): `prefix` ended."""
    size: int
    length: int
    keep_alive: bool
    """The upstream connection may carry another request."""


T = TypeVar("T")


class _Memo(Generic[T]):
    """What recent heads were read as (None: not plain). An entry is a function of its key alone, so
    data planes on several threads (tests run a few in one process) may share a memo: each dict
    operation is atomic, and a lookup that races a `clear` merely reads the head again."""

    __slots__ = ("_read", "known")

    def __init__(self, read: Callable[[bytes], T | None]) -> None:
        self._read = read
        self.known: dict[bytes, T | None] = {}
        """Looked up by the callers themselves (a call less per message); `read` when absent."""

    def read(self, head: bytes) -> T | None:
        found = self._read(head)
        if len(head) <= _MEMO_HEAD_BYTES:
            if len(self.known) >= _MEMO_HEADS:
                self.known.clear()
            self.known[head] = found
        return found


def _framing(parts: list[bytes], *, answer: bool) -> tuple[int, int] | None:
    """(Content-Length or -1, Connection: 1 keep-alive, 0 close, -1 none) from the hop-by-hop lines
    (`parts` as `_HOP_LINE.split` gives them), or None if not plain."""
    length = -1
    connection = -1
    for index in range(1, len(parts), 3):
        name, value = parts[index].lower(), parts[index + 1]
        if name == b"content-length":
            if length >= 0 or not value.isdigit() or len(value) > _LENGTH_DIGITS:
                return None
            length = int(value)
        elif name == b"connection":
            lowered = value.lower()
            if connection >= 0 or lowered not in (b"keep-alive", b"close"):
                return None
            connection = 1 if lowered == b"keep-alive" else 0
        elif not (answer and name == b"keep-alive"):
            return None  # Transfer-Encoding, Expect, Upgrade, TE, ...: llhttp and `wire` decide
    return length, connection


def _request_fields(fields: bytes) -> _Fields | None:
    if _FIELDS.fullmatch(fields) is None:
        return None
    block = fields[:-2]
    # Each line is at least 4 bytes ("n:" CRLF): a block no longer than this has few enough to skip counting.
    if len(block) > 4 * _MAX_FIELDS and block.count(b"\n") > _MAX_FIELDS:
        return None
    parts = _HOP_LINE.split(block)
    if len(parts) == 1:
        return _Fields(block, b"", -1, -1)  # no hop-by-hop or framing line: the common request
    found = _framing(parts, answer=False)
    if found is None:
        return None
    length, connection = found
    framing = b"Content-Length: %d\r\n" % length if length >= 0 else b""
    return _Fields(b"".join(parts[::3]), framing, length, connection)


def _request_head(head: bytes) -> RequestHead | None:
    """The request line is read here, the header lines by `_request_fields` through their own memo: requests
    whose targets all differ (a client walking a site) mostly share their header lines."""
    line = _REQUEST_LINE.match(head)
    if line is None:
        return None
    fields = head[line.end() :]
    found: _Fields | None = _known_fields.get(fields, _UNREAD)
    if found is _UNREAD:
        found = _fields.read(fields)
    if found is None:
        return None
    method, target, minor = line.groups()
    lines, framing, length, connection = found
    upstream = b"%s %s HTTP/1.1\r\n%s%s\r\n" % (method, target, lines, framing)
    keep = connection == 1 or (connection < 0 and minor == b"1")
    # tuple.__new__: a NamedTuple's own constructor costs a Python call more, on every head not remembered.
    return tuple.__new__(
        RequestHead, (method, target, lines, upstream, len(head), max(length, 0), length >= 0, keep, minor == b"1")
    )


def _answer_head(head: bytes) -> AnswerHead | None:
    matched = _ANSWER.fullmatch(head)
    if matched is None:
        return None
    minor, code, block = matched.groups()
    if code in (b"204", b"304") or block.count(b"\n") > _MAX_FIELDS:
        return None
    parts = _HOP_LINE.split(block)
    found = _framing(parts, answer=True)
    if found is None or found[0] < 0:
        return None  # no Content-Length: chunked or until the close
    length, connection = found
    status = int(code)
    prefix = b"HTTP/1.1 %d %s\r\n%sContent-Length: %d\r\n" % (
        status,
        _REASONS.get(status, b"Unknown"),
        b"".join(parts[::3]),
        length,
    )
    keep = connection == 1 or (connection < 0 and minor == b"1")
    return AnswerHead(status, prefix, prefix + b"\r\n", len(head), length, keep)


_UNREAD: Any = object()
"""What a memo's `get` returns for a key it does not hold (None is a value: not plain). A `get` is used
rather than catching a KeyError, which costs more than a miss is worth where every target differs."""
_fields = _Memo(_request_fields)
_known_fields = _fields.known
_requests = _Memo(_request_head)
_answers = _Memo(_answer_head)
_known_requests = _requests.known
_known_answers = _answers.known


def read_request(data: bytes, max_size: int, max_body: int) -> RequestHead | None:
    """The head of `data` if `data` is one whole plain request of at most `max_size` bytes (the
    caller's head limit, at most `MAX_FAST`) with a body of at most `max_body`, else None. The body
    is what follows the head (`size`)."""
    if len(data) > max_size:
        return None
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    key = data[: end + 4]
    head: RequestHead | None = _known_requests.get(key, _UNREAD)
    if head is _UNREAD:
        head = _requests.read(key)
    if head is None or head.size + head.length != len(data) or head.length > max_body:
        return None
    return head


def read_answer(data: bytes) -> AnswerHead | None:
    """The head of `data` if `data` is one whole plain answer with a Content-Length, else None.
    Answers without a body (1xx, 204, 304) are not plain, and the caller does not ask for answers to HEAD."""
    if len(data) > MAX_FAST:
        return None
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    key = data[: end + 4]
    try:
        head = _known_answers[key]
    except KeyError:
        head = _answers.read(key)
    if head is None or head.size + head.length != len(data):
        return None
    return head
