"""The run's log: every line goes to stdlib logging (redacted) and into the result's `logs`.

One `RunLog` per run is passed to the steps that report progress. While the run is `capturing`, the
lines any `orchestrator.*` module logs on its own (a health attempt that failed, a migration applied or
undone) are kept too, so the output contract's `logs` array and the summary's Log section hold exactly
what the job log showed, in order, with levels and timestamps.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from orchestrator import progress
from orchestrator.contract import LogEntry, LogLevel
from orchestrator.redaction import redact

__all__ = ["RunLog", "utc_now"]

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


def utc_now() -> str:
    """ISO-8601 UTC with milliseconds and a Z, the timestamp form of every output field."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RunLog:
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("orchestrator")
        self._entries: list[LogEntry] = []
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
        with self._lock:
            self._entries.append(LogEntry(level=level, message=clean, timestamp=utc_now()))
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
        entry = LogEntry(level=level, message=redact(record.getMessage()), timestamp=utc_now())
        with self._lock:
            self._entries.append(entry)

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
        with self._lock:
            return tuple(self._entries)
