"""Writing the files the runner reads back (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, the result file).

A full disk, a bad path or a read-only mount must not turn a finished run into a traceback or
change what the run itself decided: each write returns a `WriteFailure` instead of raising, and
the CLI reports every failure once and picks the exit code (README, "Exit codes").
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WriteFailure", "write_text"]


@dataclass(frozen=True, slots=True)
class WriteFailure:
    """One file the run could not write: which channel, where, and the operating system's reason."""

    channel: str
    path: str
    reason: str

    def message(self) -> str:
        return f"cannot write {self.channel} ({self.path}): {self.reason}"


def write_text(channel: str, path: Path, text: str, *, append: bool, make_parents: bool = False) -> WriteFailure | None:
    """Write (or append) `text` to `path` (creating its folder with `make_parents`: only for our own
    files, never the runner's); a failure is returned, never raised.

    Opens without blocking, so a FIFO with no reader is a failure rather than a hang; characters
    that cannot be encoded (undecodable bytes from argv) are written backslash-escaped.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_APPEND if append else os.O_TRUNC
    try:
        if make_parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as handle:
            mode = os.fstat(fd).st_mode
            if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                return WriteFailure(channel, str(path), "it is a FIFO or socket, not a file")
            os.set_blocking(fd, True)
            handle.write(text)
    except OSError as exc:
        return WriteFailure(channel, str(path), exc.strerror or type(exc).__name__)
    except ValueError as exc:  # a NUL byte in the path
        return WriteFailure(channel, repr(str(path)), str(exc))
    return None
