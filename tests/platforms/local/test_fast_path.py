"""The fast path reads a message exactly as llhttp does, or leaves it to llhttp.

Every message `fast_path` takes is parsed by llhttp (httptools) too, and the two must agree on every
field the proxy forwards: method, target, version, the end-to-end headers, the body, keep-alive. The
messages are hand-picked (the common ones, and the near misses smuggling lives on) and generated from
pieces of HTTP (hypothesis), so the test covers what neither list would alone.
"""

from __future__ import annotations

import re

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.platforms.local.fast_path import MAX_FAST, read_answer, read_request
from orchestrator.platforms.local.wire import scan

Header = tuple[bytes, bytes]
_LINE = re.compile(rb"([^:\r\n]+):[ \t]*([^\r\n]*)\r\n")


class _Read:
    """What llhttp made of one buffer: the messages it completed, and whether it refused the buffer."""

    def __init__(self, data: bytes, *, answer: bool) -> None:
        self.messages: list[dict[str, object]] = []
        self._headers: list[Header] = []
        self._url = b""
        self._body = b""
        self.error = False
        self.parser = httptools.HttpResponseParser(self) if answer else httptools.HttpRequestParser(self)
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self.error = True

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        parser = self.parser
        method = parser.get_method() if isinstance(parser, httptools.HttpRequestParser) else None
        status = parser.get_status_code() if isinstance(parser, httptools.HttpResponseParser) else None
        scanned = scan(self._headers)
        self.messages.append(
            {
                "method": method,
                "status": status,
                "target": self._url,
                "version": parser.get_http_version(),
                "lines": _pairs(scanned.lines),
                "body": self._body,
                "keep": parser.should_keep_alive(),
            }
        )
        self._headers, self._url, self._body = [], b"", b""


def _pairs(lines: bytes) -> list[Header]:
    """Header lines as (name, value) pairs, values without their leading whitespace."""
    return [(n, v) for n, v in _LINE.findall(lines)]


def _check_request(data: bytes) -> bool:
    head = read_request(data, MAX_FAST, 1 << 20)
    if head is None:
        return False
    read = _Read(data, answer=False)
    assert not read.error, data
    assert len(read.messages) == 1, data
    [message] = read.messages
    body = data[head.size :]
    assert message["method"] == head.method
    assert message["target"] == head.target
    assert message["version"] == ("1.1" if head.version_11 else "1.0")
    assert message["lines"] == _pairs(head.lines), data
    assert message["body"] == body
    assert message["keep"] == head.keep_alive, data
    # What goes upstream reads the same again, framed by the proxy's own Content-Length.
    [sent] = _Read(head.upstream + body, answer=False).messages
    assert (sent["method"], sent["target"], sent["body"]) == (head.method, head.target, body)
    assert sent["lines"] == message["lines"]
    assert sent["version"] == "1.1"
    return True


def _check_answer(data: bytes) -> bool:
    head = read_answer(data)
    if head is None:
        return False
    read = _Read(data, answer=True)
    assert not read.error, data
    assert len(read.messages) == 1, data
    [message] = read.messages
    assert message["status"] == head.status
    assert message["body"] == data[head.size :]
    assert message["keep"] == head.keep_alive, data
    # What the client gets (the proxy adds its Connection line, if any, and the blank line) reads the same.
    [relayed] = _Read(head.prefix + b"\r\n" + data[head.size :], answer=True).messages
    assert (relayed["status"], relayed["lines"], relayed["body"]) == (head.status, message["lines"], message["body"])
    return True


TAKEN_REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
    b"GET /a/b?c=d&e=%20f HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
    b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"PUT / HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-Empty:\r\nX-Tab:\tv\r\nX-Sp: a  b\r\n\r\n",
]

# Each is either refused by llhttp or needs what only the full path does: never taken here.
LEFT_REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: x\r\n",  # head not finished
    b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel",  # body still arriving
    b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n",  # pipelined
    b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello",
    b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",  # obs-fold
    b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",  # space before the colon
    b"GET / HTTP/1.1\nHost: x\n\n",  # bare LF
    b"GET / HTTP/1.1\r\nHost: x\rY\r\n\r\n",  # bare CR
    b"GET / HTTP/1.1\r\nHost: x\x00\r\n\r\n",  # NUL
    b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n",  # obs-text
    b"GET / HTTP/1.1\r\nHost: x \r\n\r\n",  # trailing whitespace
    b"GET / HTTP/1.1\r\nConnection: close, Content-Length\r\n\r\n",
    b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
    b"GET / HTTP/1.1\r\nTE: trailers\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
    b"GET http://example.com/ HTTP/1.1\r\n\r\n",  # absolute form
    b"OPTIONS * HTTP/1.1\r\n\r\n",
    b"GET / HTTP/2.0\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",  # more header fields than allowed
    b"GET /" + b"a" * MAX_FAST + b" HTTP/1.1\r\n\r\n",  # too large for the fast path
]


@pytest.mark.parametrize("data", TAKEN_REQUESTS)
def test_common_requests_are_taken_as_llhttp_reads_them(data: bytes) -> None:
    assert _check_request(data)


@pytest.mark.parametrize("data", LEFT_REQUESTS)
def test_anything_else_is_left_to_llhttp(data: bytes) -> None:
    assert read_request(data, MAX_FAST, 1 << 20) is None


def test_requests_sharing_their_header_lines_are_each_read_by_their_own_request_line() -> None:
    """The header lines are remembered apart from the request line: one remembered must not carry
    another request's method, target or version."""
    fields = b"Host: x\r\nContent-Length: 2\r\n\r\nhi"
    lines = [b"POST /a HTTP/1.1\r\n", b"PUT /b?c=d HTTP/1.0\r\n", b"POST /a HTTP/1.0\r\n", b"GET /%20 HTTP/1.1\r\n"]
    for line in lines * 2:
        assert _check_request(line + fields)
        head = read_request(line + fields, MAX_FAST, 1 << 20)
        assert head is not None
        assert head.upstream.startswith(line.split(b" HTTP/")[0] + b" HTTP/1.1\r\n")
    assert read_request(b"CONNECT /a HTTP/1.1\r\n" + fields, MAX_FAST, 1 << 20) is None


def test_limits_leave_large_requests_to_the_full_path() -> None:
    data = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    assert read_request(data, len(data) - 1, 1 << 20) is None  # the head limit is the caller's
    assert read_request(data, MAX_FAST, 4) is None  # so is the body limit


NGINX_ANSWER = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 02 Dec 2026 13:40:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nblue\n"
)
TAKEN_ANSWERS = [
    NGINX_ANSWER,
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    b"HTTP/1.0 404 Not Found\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbad",
    b"HTTP/1.1 302 \r\nLocation: /x\r\nSet-Cookie: a=b\r\nSet-Cookie: c=d\r\nContent-Length: 0\r\n\r\n",
]
LEFT_ANSWERS = [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\nuntil the close",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi and more",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n",
]


@pytest.mark.parametrize("data", TAKEN_ANSWERS)
def test_common_answers_are_taken_as_llhttp_reads_them(data: bytes) -> None:
    assert _check_answer(data)


@pytest.mark.parametrize("data", LEFT_ANSWERS)
def test_other_answers_are_left_to_llhttp(data: bytes) -> None:
    assert read_answer(data) is None


_NAMES = st.sampled_from(
    [b"Host", b"Content-Length", b"content-length", b"Transfer-Encoding", b"Connection", b"Keep-Alive", b"TE",
     b"Expect", b"Upgrade", b"X-A", b"Cookie", b"Host ", b"X\x00", b"X:Y", b"", b"Proxy-Connection"]
)  # fmt: skip
_VALUES = st.sampled_from(
    [b"", b"x", b"5", b"05", b"0", b"-1", b"5, 5", b"chunked", b"close", b"keep-alive", b"Keep-Alive",
     b"close, Content-Length", b"a b", b" x", b"x ", b"\tx", b"x\ty", b"\xff", b"a\rb", b"a\nb", b"1" * 20]
)  # fmt: skip
_PLAIN_FIELDS = st.tuples(
    st.sampled_from([b"Host", b"X-A", b"Cookie", b"Accept", b"connection", b"Keep-Alive"]),
    st.just(b": "),
    st.sampled_from([b"x", b"a b", b"keep-alive", b"close", b"", b"*/*"]),
    st.just(b"\r\n"),
)
_SEPARATORS = st.sampled_from([b": ", b":", b":\t", b" : ", b":  "])
_ENDS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r"])
_BODIES = st.sampled_from([b"", b"hello", b"hi", b"0\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"])


@st.composite
def _heads(draw: st.DrawFn, first: st.SearchStrategy[bytes]) -> bytes:
    """A start line, header fields (plain ones, and any mix of names, values and line ends), maybe a
    Content-Length that fits the body, and a body."""
    odd = st.tuples(_NAMES, _SEPARATORS, _VALUES, _ENDS)
    fields = draw(st.lists(st.one_of(_PLAIN_FIELDS, _PLAIN_FIELDS, _PLAIN_FIELDS, odd), max_size=6))
    body = draw(_BODIES)
    if draw(st.booleans()):
        fields.insert(draw(st.integers(0, len(fields))), (b"Content-Length", b": ", b"%d" % len(body), b"\r\n"))
    return draw(first) + b"".join(n + s + v + e for n, s, v, e in fields) + draw(_ENDS) + body


_REQUEST_LINES = st.builds(
    lambda m, t, v, e: m + b" " + t + b" " + v + e,
    st.sampled_from([b"GET", b"POST", b"HEAD", b"PATCH", b"CONNECT", b"get", b"FOO"]),
    st.sampled_from(
        [b"/", b"/a?b=c", b"/%zz", b"/a#f", b'/"', b"/a b", b"*", b"http://x/", b"/\x7f", b"/~!$&'()*+,;=:@"]
    ),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2", b"http/1.1"]),
    _ENDS,
)  # fmt: skip
_STATUS_LINES = st.builds(
    lambda v, s, r, e: v + b" " + s + r + e,
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2"]),
    st.sampled_from([b"200", b"204", b"304", b"100", b"404", b"599", b"999", b"20"]),
    st.sampled_from([b" OK", b" ", b"", b" Not Found", b" \xff", b" a\tb"]),
    _ENDS,
)


@settings(max_examples=1500, deadline=None)
@given(_heads(st.one_of(st.sampled_from([b"GET / HTTP/1.1\r\n", b"POST /a HTTP/1.0\r\n"]), _REQUEST_LINES)))
def test_generated_requests_are_read_as_llhttp_reads_them_or_left(data: bytes) -> None:
    _check_request(data)


@settings(max_examples=1500, deadline=None)
@given(_heads(st.one_of(st.sampled_from([b"HTTP/1.1 200 OK\r\n", b"HTTP/1.0 404 Not Found\r\n"]), _STATUS_LINES)))
def test_generated_answers_are_read_as_llhttp_reads_them_or_left(data: bytes) -> None:
    _check_answer(data)
