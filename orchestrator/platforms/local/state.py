"""What the supervisor keeps on disk: its releases and the routing weights, in `state_dir`.

The file is the supervisor's memory across its own restarts: a restarted supervisor reads it,
re-adopts release processes that still run and restarts the others on the same port. It is
written atomically (temporary file + rename) so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ReleaseRecord",
    "State",
    "StatePaths",
    "check_version",
    "load_state",
    "save_state",
]

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$")
_FORMAT = 1


def check_version(version: str) -> str:
    """Return `version` unchanged, or raise ValueError saying what a version label may contain."""
    if not _VERSION.match(version):
        raise ValueError(
            f"version {version!r} is not a valid release label: use 1 to 128 characters from "
            "letters, digits and . _ : + - (starting with a letter or digit)"
        )
    return version


@dataclass(frozen=True, slots=True)
class StatePaths:
    """Every file the supervisor owns, all under one directory."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def socket(self) -> Path:
        return self.root / "control.sock"

    @property
    def lock(self) -> Path:
        return self.root / "supervisor.lock"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    def release_log(self, version: str) -> Path:
        # ':' is legal in a label but awkward in file names on some tools; '+' and '.' are fine.
        return self.root / "logs" / f"{check_version(version).replace(':', '_')}.log"


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """One release process: how to (re)start it and how to recognise it after a restart."""

    version: str
    port: int
    argv: tuple[str, ...]
    cwd: str
    env: tuple[tuple[str, str], ...]
    seq: int
    """Order of first start: the higher, the newer."""
    started_at: float
    startup_timeout: float
    pid: int = 0
    pid_start: int = 0
    """The process's start time in clock ticks (/proc/<pid>/stat field 22): guards against pid reuse."""
    image: str | None = None


@dataclass(frozen=True, slots=True)
class State:
    listen: str
    releases: Mapping[str, ReleaseRecord] = field(default_factory=dict)
    weights: Mapping[str, int] = field(default_factory=dict)
    live: str | None = None
    """The last release that took all traffic: the one to return to when a canary is abandoned."""
    next_seq: int = 1


def save_state(paths: StatePaths, state: State) -> None:
    """Write the state atomically. No fsync: it must survive our process, not a power cut."""
    doc: dict[str, Any] = {
        "format": _FORMAT,
        "listen": state.listen,
        "live": state.live,
        "next_seq": state.next_seq,
        "weights": dict(state.weights),
        "releases": [asdict(r) for r in sorted(state.releases.values(), key=lambda r: r.seq)],
    }
    tmp = paths.state.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=1)
    os.replace(tmp, paths.state)


def load_state(paths: StatePaths) -> State | None:
    """The saved state, or None when there is none. Raises ValueError naming the file if unreadable."""
    try:
        raw = paths.state.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
        releases = {}
        for item in doc["releases"]:
            item["argv"] = tuple(item["argv"])
            item["env"] = tuple(tuple(pair) for pair in item["env"])
            record = ReleaseRecord(**item)
            releases[record.version] = record
        return State(
            listen=str(doc["listen"]),
            releases=releases,
            weights={str(k): int(v) for k, v in doc["weights"].items()},
            live=doc.get("live"),
            next_seq=int(doc.get("next_seq", len(releases) + 1)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{paths.state}: unreadable supervisor state ({exc!r}); stop the supervisor and delete the file "
            "to start from scratch"
        ) from exc
