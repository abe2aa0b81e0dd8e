"""Secrets: a type that never prints its value, and a redactor that knows every form it takes.

A `Secret` is unwrapped only at the call that needs it (`reveal()`). Every secret value read at
start-up is registered with `register()` before anything can mention it. Registration derives
what a value can turn into on its way to a log or an output, because a secret rarely leaks
verbatim: the password inside a DSN (a URL's `user:pw@`, percent-decoded, or a libpq
key=value `password='...'`, unquoted), and each of those as it reads once JSON-escaped,
percent-encoded, repr-escaped, libpq-quoted, Markdown-escaped or annotation-escaped, one
encoding inside another included. `redact()` masks every form in one pass (an Aho-Corasick
automaton: a regex alternation of thousands of forms takes seconds to compile and to scan with,
and a long-lived process registers forms for every secret it meets); `redact_data()` masks
the strings of a structure before it is serialised, since serialising escapes the value into
a form the plain text no longer matches. Inside GitHub Actions the runner's masking is told
too (`::add-mask::`).
"""

from __future__ import annotations

import bisect
import html
import itertools
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

import ahocorasick

__all__ = ["RedactingFilter", "Secret", "install_filter", "mask_url", "redact", "redact_data", "register"]

_MASK = "***"
_MIN_LENGTH = 4
"""Masking one- to three-character strings would shred ordinary text, so shorter values are not masked."""

_lock = threading.Lock()
_registered: set[str] = set()
_forms: set[str] = set()
_matcher = ahocorasick.Automaton()
_matcher_ready = False


class Secret:
    """A secret value. `str()` and `repr()` are masked; `reveal()` returns the value."""

    __slots__ = ("_value", "name")

    def __init__(self, value: str, name: str = "secret") -> None:
        self._value = value
        self.name = name
        register(value)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return _MASK

    def __repr__(self) -> str:
        return f"Secret({self.name}={_MASK})"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


def register(value: str) -> None:
    """Remember a secret value, and every form derived from it, so `redact()` hides them everywhere."""
    if not value or len(value) < _MIN_LENGTH:
        return
    global _matcher_ready
    with _lock:
        if value in _registered:
            return
        _registered.add(value)
        atoms = _atoms(value)
        # A multi-line value's lines are masked as they are: encoding each of a kubeconfig's lines
        # would make thousands of forms, and an escaped line break already splits them.
        lines = {line for line in value.splitlines() if len(line) >= _MIN_LENGTH} - atoms
        # ...and JSON-escaped too (one form a line): a result or payload quotes a `"token": "..."` line so.
        lines |= {json.dumps(line.strip())[1:-1] for line in lines if len(line.strip()) >= _MIN_LENGTH}
        new = (_encodings(atoms, rounds=2) | lines) - _forms
        _forms.update(new)
        for form in new:
            _matcher.add_word(form, len(form))
        _matcher_ready = False
    if os.environ.get("GITHUB_ACTIONS") == "true":
        # The runner hides what reaches the job log; one encoding deep covers what it can see.
        for form in sorted((_encodings(atoms, rounds=1) | lines) & new):
            for line in form.splitlines():
                if len(line.strip()) >= _MIN_LENGTH:
                    # The runner unescapes command data, so a literal % must reach it as %25.
                    sys.stdout.write(f"::add-mask::{line.replace('%', '%25')}\n")
        sys.stdout.flush()


def _atoms(value: str) -> set[str]:
    """The value, and a DSN's password as written and as decoded."""
    atoms = {value}
    atoms.update(_dsn_passwords(value))
    return {a for a in atoms if len(a) >= _MIN_LENGTH}


def _dsn_passwords(value: str) -> set[str]:
    found: set[str] = set()
    if "://" in value:
        try:
            raw = urlsplit(value).password
        except ValueError:
            raw = None
        if raw:
            found.update({raw, unquote(raw)})
    elif "=" in value:
        found.update(_raw_kv_password(m) for m in _KV_PASSWORD.finditer(value))
    # Imported here: the orchestrator's code on a `hosts` server runs on the host's bare Python.
    import psycopg2.extensions

    try:
        parsed = psycopg2.extensions.parse_dsn(value).get("password")
    except (psycopg2.Error, TypeError, ValueError):
        parsed = None
    if parsed:
        found.add(parsed)
    return found


def _raw_kv_password(match: re.Match[str]) -> str:
    raw = match.group(2)
    return raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == "'" else raw


_ENCODINGS: tuple[Callable[[str], str], ...] = (
    lambda s: json.dumps(s)[1:-1],
    lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    lambda s: quote(s, safe=""),
    lambda s: quote_plus(s, safe=""),
    quote,
    lambda s: repr(s)[1:-1],
    lambda s: s.replace("\\", "\\\\").replace("'", "\\'"),  # libpq key=value quoting
    lambda s: s.replace("|", "\\|"),  # a Markdown table cell
    lambda s: s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"),  # a workflow command
    lambda s: html.escape(s, quote=False),
)


def _encodings(atoms: Iterable[str], *, rounds: int) -> set[str]:
    """Each atom as it reads after up to `rounds` of the encodings above, one inside another."""
    forms = set(atoms)
    for _ in range(rounds):
        forms |= {encode(form) for form in forms for encode in _ENCODINGS}
    return {f for f in forms if len(f) >= _MIN_LENGTH}


def _secret_spans(text: str) -> list[tuple[int, int]]:
    """Where registered forms occur: leftmost first, the longest there, never overlapping, so a
    whole DSN is masked as one rather than around its password."""
    with _lock:
        if not _matcher_built():
            return []
        return [(end + 1 - length, end + 1) for end, length in _matcher.iter_long(text)]


def _matcher_built() -> bool:
    """Whether any form is registered, the automaton built for them if so. Called under `_lock`."""
    global _matcher_ready
    if not _forms:
        return False
    if not _matcher_ready:
        _matcher.make_automaton()
        _matcher_ready = True
    return True


def redact(text: str) -> str:
    """Replace every registered secret form, any URL password and any `password=` value with `***`."""
    spans = _secret_spans(text)
    if spans:
        parts: list[str] = []
        kept = 0
        for start, end in spans:
            parts += (text[kept:start], _MASK)
            kept = end
        parts.append(text[kept:])
        text = "".join(parts)
    # Each pattern needs its literal ("://", "="): most texts (digests, file names) skip the scan.
    if "://" in text:
        text = _mask_url_passwords(text)
    if "=" in text and _KV_LITERAL.search(text):
        text = _KV_PASSWORD.sub(lambda m: m.group(1) + _MASK, text)
    return text


def redact_data(value: Any) -> Any:
    """`value` with every string in it (keys included) redacted: dicts, lists and tuples are rebuilt.

    The strings are scanned together first, a few thousand at a time, and only those a secret form,
    a URL or a `=` touches are redacted one by one: a result holds thousands of digests and file
    names, and redacting each took a fifth of a second.
    """
    suspects = _Suspects()
    _strings_of(value, suspects)
    suspects.scan()
    return _rebuilt(value, {s: redact(s) for s in suspects.found})


class _Suspects:
    """The strings `redact` may change: each one a registered form occurs in (found in one scan of a
    batch joined; an occurrence across a join marks both sides), or holding "://" or "="."""

    BATCH = 4096

    def __init__(self) -> None:
        self.found: set[str] = set()
        self.batch: list[str] = []

    def add(self, text: str) -> None:
        if "://" in text or "=" in text:
            self.found.add(text)
        self.batch.append(text)
        if len(self.batch) >= self.BATCH:
            self.scan()

    def scan(self) -> None:
        batch, self.batch = self.batch, []
        occurrences = _occurrences("\0".join(batch)) if batch else []
        if not occurrences:
            return
        ends = list(itertools.accumulate(len(s) + 1 for s in batch))
        """ends[i]: where string i + 1 starts in the joined batch; offset x is in string bisect_right(ends, x)."""
        for end, length in occurrences:
            first, last = bisect.bisect_right(ends, end + 1 - length), bisect.bisect_right(ends, end)
            self.found.update(batch[first : last + 1])


def _strings_of(value: Any, into: _Suspects) -> None:
    if isinstance(value, str):
        into.add(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _strings_of(k, into)
            _strings_of(v, into)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _strings_of(v, into)


def _occurrences(text: str) -> list[tuple[int, int]]:
    """(end index, length) of every occurrence of a registered form, overlapping ones included."""
    with _lock:
        if not _matcher_built():
            return []
        return list(_matcher.iter(text))


def _rebuilt(value: Any, redacted: dict[str, str]) -> Any:
    if isinstance(value, str):
        return redacted.get(value, value)
    if isinstance(value, dict):
        return {_rebuilt(k, redacted): _rebuilt(v, redacted) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rebuilt(v, redacted) for v in value]
    return value


_URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]+@")
_URL_TAIL = re.compile(r"://([^:/@\s]+:)[^@\s]+@")
_SCHEME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s'\"]+)", re.IGNORECASE)
_KV_LITERAL = re.compile("password", re.IGNORECASE)
"""Every `_KV_PASSWORD` match holds it; searching for it alone is several times faster."""


def _mask_url_passwords(text: str) -> str:
    """`_URL_PASSWORD.sub(<its group 1> + "***@", text)`, searched from each "://": trying a scheme at
    every character took a fifth of a second on a megabyte result. The scheme is the run of scheme
    characters before "://" (after the previous match), which must hold a letter to start with."""
    parts: list[str] = []
    kept = position = 0
    while (match := _URL_TAIL.search(text, position)) is not None:
        at = match.start()
        before = at - 1
        while before >= kept and text[before] in _SCHEME and text[before] not in _LETTERS:
            before -= 1
        if before < kept or text[before] not in _LETTERS:
            position = at + 1
            continue
        parts += (text[kept : match.end(1)], _MASK, "@")
        kept = position = match.end()
    if not parts:
        return text
    parts.append(text[kept:])
    return "".join(parts)


def mask_url(url: str) -> str:
    """A URL or DSN with its password replaced by `***` (user and host kept for diagnosis).

    Handles URLs (`postgresql://user:pw@host/db`) and libpq key=value DSNs (`host=h password=pw`)."""
    if "://" not in url:
        return _KV_PASSWORD.sub(lambda m: m.group(1) + _MASK, url)
    try:
        parts = urlsplit(url)
        password, port = parts.password, parts.port
    except ValueError:
        return redact(url)
    if password is None:
        return _KV_PASSWORD.sub(lambda m: m.group(1) + _MASK, url)
    netloc = f"{parts.username}:{_MASK}@{parts.hostname}"
    if port:
        netloc += f":{port}"
    query = _KV_PASSWORD.sub(lambda m: m.group(1) + _MASK, parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class RedactingFilter(logging.Filter):
    """Rewrites every record's message with secrets masked, whatever the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            # Handlers format the traceback after filters run: format it here so it is redacted too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_filter(handler: logging.Handler) -> None:
    handler.addFilter(RedactingFilter())
