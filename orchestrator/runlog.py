"""The run's log: every line goes to stdlib logging (redacted) and into the result's `logs`.

One `RunLog` per run is passed to the steps that report progress, so the output contract's
`logs` array holds exactly what the job log showed, in order, with levels and timestamps.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from orchestrator.contract import LogEntry, LogLevel
from orchestrator.redaction import redact

__all__ = ["RunLog", "utc_now"]

_LEVELS: dict[LogLevel, int] = {"info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


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
        self._logger.log(_LEVELS[level], clean)

    @contextmanager
    def phase(self, title: str) -> Iterator[None]:
        """Fold the lines of one phase in the Actions job log (`::group::`); plain outside Actions.

        Groups do not nest in the job log, so a phase opened inside another is not folded again.
        """
        fold = os.environ.get("GITHUB_ACTIONS") == "true" and not self._in_phase
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
