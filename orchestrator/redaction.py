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

import html
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
    global _matcher_ready
    with _lock:
        if not _forms:
            return []
        if not _matcher_ready:
            _matcher.make_automaton()
            _matcher_ready = True
        return [(end + 1 - length, end + 1) for end, length in _matcher.iter_long(text)]


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
        text = _URL_PASSWORD.sub(lambda m: m.group(1) + _MASK + "@", text)
    if "=" in text:
        text = _KV_PASSWORD.sub(lambda m: m.group(1) + _MASK, text)
    return text


def redact_data(value: Any) -> Any:
    """`value` with every string in it (keys included) redacted: dicts, lists and tuples are rebuilt."""
    return _redact_data(value, {})


def _redact_data(value: Any, keys: dict[str, str]) -> Any:
    # A result repeats the same few keys thousands of times (one per migration file): each is redacted once.
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        redacted: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(k, str):
                key = keys.get(k)
                if key is None:
                    key = keys[k] = redact(k)
            else:
                key = _redact_data(k, keys)
            redacted[key] = _redact_data(v, keys)
        return redacted
    if isinstance(value, (list, tuple)):
        return [_redact_data(v, keys) for v in value]
    return value


_URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]+@")
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s'\"]+)", re.IGNORECASE)


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
