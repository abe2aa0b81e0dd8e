"""The outbox's fallback store: a JSONL file under the workspace, for when the database is down.

One JSON object a line (`id`, `created_at`, `deployment_id`, `priority`, `status`, `attempts`,
`pair`). Appends are fsynced; rewrites go through a temporary file and a rename, so a crash leaves
either the old content or the new, never half of it. Every access holds an exclusive `flock` on
a sibling `.lock` file (not on the data file, which the rename replaces).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["FallbackFile"]

log = logging.getLogger(__name__)


class FallbackFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_suffix(".lock")

    def exists(self) -> bool:
        return self.path.exists()

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the file exclusively (blocking): one writer or flusher per workspace at a time."""
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self) -> list[dict[str, Any]]:
        """Every entry, in file order. Call under `lock()`."""
        if not self.path.exists():
            return []
        entries = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                # Only a crash in the middle of an append writes half a line; that enqueue never
                # returned, so its run stored the pair nowhere it believed durable. Skip it.
                log.warning("%s line %d is not JSON (a torn write); skipped", self.path, number)
        return entries

    def append(self, entry: dict[str, Any]) -> None:
        """Add an entry unless its id is already there. Call under `lock()`. Raises OSError."""
        if any(e.get("id") == entry["id"] for e in self.read()):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def write(self, entries: list[dict[str, Any]]) -> None:
        """Replace the content atomically; remove the file when empty. Call under `lock()`. Raises OSError."""
        if not entries:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(e) + "\n" for e in entries)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)
