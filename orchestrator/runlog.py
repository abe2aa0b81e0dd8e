"""The run's log: every line goes to stdlib logging (redacted) and into the result's `logs`.

One `RunLog` per run is passed to the steps that report progress. While the run is `capturing`, the
lines any `orchestrator.*` module logs on its own (a health attempt that failed, a migration applied or
undone) are kept too, so the output contract's `logs` array and the summary's Log section hold exactly
what the job log showed, in order, with levels and timestamps.

The kept lines are bounded (`LogLimits`): a run that logs for an hour (a chatty Odoo upgrade, a
long verification) must not make a result too big for an Action output, a step summary, a ledger
row or a notification. The first lines (what was asked) and the newest (how it ended) are kept;
one `warn` entry where the middle was left out says how many lines and bytes it held, and the job
log keeps them all. A line longer than its bound is cut. Every message is redacted before it is
kept or cut, so a cut never leaves part of a secret past its mask.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from orchestrator import progress
from orchestrator.contract import LogEntry, LogLevel
from orchestrator.redaction import redact

__all__ = ["LogLimits", "RunLog", "utc_now"]

_LEVELS: dict[LogLevel, int] = {"info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


_OWN = "_runlog_entry"
"""Marks a record `RunLog` itself logged (and already kept), so capturing does not keep it twice."""


class _Capture(logging.Handler):
    def __init__(self, run_log: RunLog) -> None:
        super().__init__(logging.INFO)
        self._run_log = run_log

    def emit(self, record: logging.LogRecord) -> None:
        if not getattr(record, _OWN, False):
            self._run_log._keep(record)


@dataclass(frozen=True, slots=True)
class LogLimits:
    """How much of a run's log its result keeps."""

    head_lines: int = 50
    """The first lines, always kept (the run's inputs, versions, gates)."""
    max_lines: int = 500
    """Lines kept in all, the first ones included."""
    max_bytes: int = 128 * 1024
    """UTF-8 bytes of the kept messages in all; the first lines take at most a quarter."""
    max_line_bytes: int = 4096
    """A longer message is cut to this, with a note of what was cut."""

    def __post_init__(self) -> None:
        if not 0 <= self.head_lines < self.max_lines or self.max_line_bytes * 4 > self.max_bytes:
            raise ValueError(f"{self}: need 0 <= head_lines < max_lines and max_line_bytes <= max_bytes / 4")


def utc_now() -> str:
    """ISO-8601 UTC with milliseconds and a Z, the timestamp form of every output field."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RunLog:
    def __init__(self, logger: logging.Logger | None = None, *, limits: LogLimits = LogLimits()) -> None:
        self._logger = logger or logging.getLogger("orchestrator")
        self._limits = limits
        self._head: list[LogEntry] = []
        self._head_bytes = 0
        self._tail: deque[tuple[LogEntry, int]] = deque()
        self._tail_bytes = 0
        self._dropped = 0
        self._dropped_bytes = 0
        self._last_dropped_at = ""
        self._lock = threading.Lock()
        self._in_phase = False

    def info(self, message: str) -> None:
        self._add("info", message)

    def warn(self, message: str) -> None:
        self._add("warn", message)

    def error(self, message: str) -> None:
        self._add("error", message)

    def _add(self, level: LogLevel, message: str) -> None:
        clean = redact(message)
        self._append(LogEntry(level=level, message=clean, timestamp=utc_now()))
        self._logger.log(_LEVELS[level], clean, extra={_OWN: True})

    @contextmanager
    def capturing(self) -> Iterator[None]:
        """Keep every line the orchestrator's modules log during the block, not only this log's own."""
        handler = _Capture(self)
        root = logging.getLogger("orchestrator")
        level = root.level
        if root.getEffectiveLevel() > logging.INFO:
            root.setLevel(logging.INFO)  # the run's log holds its INFO lines whatever logging is set to
        root.addHandler(handler)
        try:
            yield
        finally:
            root.removeHandler(handler)
            root.setLevel(level)

    def _keep(self, record: logging.LogRecord) -> None:
        level: LogLevel = (
            "error" if record.levelno >= logging.ERROR else "warn" if record.levelno >= logging.WARNING else "info"
        )
        self._append(LogEntry(level=level, message=redact(record.getMessage()), timestamp=utc_now()))

    def _append(self, entry: LogEntry) -> None:
        """Keep a redacted entry within the limits: the first lines, then the newest."""
        limits = self._limits
        data = entry.message.encode()
        if len(data) > limits.max_line_bytes:
            note = f" … (a line of {len(data)} bytes, cut to {limits.max_line_bytes})"
            kept = data[: limits.max_line_bytes - len(note.encode())].decode(errors="ignore")
            entry = LogEntry(level=entry.level, message=kept + note, timestamp=entry.timestamp)
            data = entry.message.encode()
        size = len(data)
        with self._lock:
            if (
                not self._tail
                and len(self._head) < limits.head_lines
                and self._head_bytes + size <= limits.max_bytes // 4
            ):
                self._head.append(entry)
                self._head_bytes += size
                return
            self._tail.append((entry, size))
            self._tail_bytes += size
            while len(self._head) + len(self._tail) > limits.max_lines or (
                self._head_bytes + self._tail_bytes > limits.max_bytes
            ):
                dropped, dropped_size = self._tail.popleft()
                self._tail_bytes -= dropped_size
                self._dropped += 1
                self._dropped_bytes += dropped_size
                self._last_dropped_at = dropped.timestamp

    @contextmanager
    def phase(self, title: str) -> Iterator[None]:
        """Fold the lines of one phase in the Actions job log (`::group::`); in a terminal, a live
        status line names the phase and counts its seconds; plain lines anywhere else.

        Groups do not nest in the job log, so a phase opened inside another is not folded again.
        """
        fold = os.environ.get("GITHUB_ACTIONS") == "true" and not self._in_phase
        if not fold and not self._in_phase and progress.interactive():
            self._in_phase = True
            try:
                with progress.live_status(title):
                    yield
            finally:
                self._in_phase = False
            return
        if fold:
            for handler in self._logger.handlers:
                handler.flush()
            sys.stdout.write(f"::group::{title}\n")
            sys.stdout.flush()
            self._in_phase = True
        try:
            yield
        finally:
            if fold:
                for handler in self._logger.handlers:
                    handler.flush()
                sys.stdout.write("::endgroup::\n")
                sys.stdout.flush()
                self._in_phase = False

    @property
    def entries(self) -> tuple[LogEntry, ...]:
        """The kept lines in order; where lines were left out, one `warn` entry saying how many."""
        with self._lock:
            tail = tuple(entry for entry, _ in self._tail)
            if not self._dropped:
                return (*self._head, *tail)
            gap = LogEntry(
                level="warn",
                message=(
                    f"… {self._dropped} log line(s) ({self._dropped_bytes} bytes) left out here to keep the result "
                    f"small (at most {self._limits.max_lines} lines, {self._limits.max_bytes} bytes): "
                    "the job log has every line"
                ),
                timestamp=self._last_dropped_at,
            )
            return (*self._head, gap, *tail)
