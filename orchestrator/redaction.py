"""Secrets: a type that never prints its value, and a log filter as the second defence.

A `Secret` is unwrapped only at the call that needs it (`reveal()`). Every secret value
read at start-up is also registered with `register()`, which feeds the logging filter and,
inside GitHub Actions, the runner's own masking (`::add-mask::`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from urllib.parse import urlsplit, urlunsplit

__all__ = ["RedactingFilter", "Secret", "install_filter", "mask_url", "redact", "register"]

_MASK = "***"
_lock = threading.Lock()
_values: set[str] = set()


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
    """Remember a secret value so that `redact()` and the log filter hide it everywhere."""
    if not value or len(value) < 4:
        # Masking one- to three-character strings would shred ordinary text.
        return
    with _lock:
        if value in _values:
            return
        _values.add(value)
        password = urlsplit(value).password if "://" in value else None
        if password and len(password) >= 4:
            _values.add(password)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for line in value.splitlines():
            if line.strip():
                sys.stdout.write(f"::add-mask::{line}\n")
        sys.stdout.flush()


def redact(text: str) -> str:
    """Replace every registered secret value, and any URL password, with `***`."""
    with _lock:
        values = sorted(_values, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, _MASK)
    return _URL_PASSWORD.sub(lambda m: m.group(1) + _MASK + "@", text)


_URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]+@")


def mask_url(url: str) -> str:
    """A URL or DSN with its password replaced by `***` (user and host kept for diagnosis)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:{_MASK}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


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
