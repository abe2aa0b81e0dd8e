"""What the supervisor keeps on disk: its releases, the routing weights and their sticky rule, in `state_dir`.

The file is the supervisor's memory across its own restarts: a restarted supervisor reads it,
re-adopts replica processes that still run and restarts the others on the same port. It is
written atomically (temporary file + rename) so a crash never leaves half a file.

A route call changes only the weights, and it is on the switch's critical path: it appends one line to
`routing.jsonl` instead (`save_routing`), an append that takes microseconds where a rename over the
state file waits on the filesystem's journal (milliseconds on a busy disk: ext4 flushes a file renamed
over another). The last whole line of that journal, if any, is the routing in force; writing the whole
state, which includes the routing, deletes the journal. A crash mid-append leaves a cut last line,
which is ignored: that route call was never answered.

Format 3 records each release's snapshot (its directory and tree digest, and the gated artifacts
it covers) and remembers retired releases' digests. Format 4 writes each distinct list of gated
artifacts once (`gated_sets`), a release or retired release naming its list by index: the list has a
line per migration file, releases mostly share it, and with 6,000 files and the retired releases
remembered the state was 3 MB after a few deploys (22 MB at 32 retired), written at every start and
retire. Format 3 is still read; format 2 (replicas, no snapshots) and format 1
(one process per release, written before `local.replicas` was honoured) are still read: their
releases have no snapshot, so they are never restarted from the workspace (see `supervisor`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator.platforms.local.data_plane import DEFAULT, DEFAULT_MAX_CONNECTIONS, DataPlane
from orchestrator.platforms.local.sticky import StickyRule

__all__ = [
    "ReleaseRecord",
    "Replica",
    "RetiredRelease",
    "State",
    "StatePaths",
    "check_version",
    "load_state",
    "save_routing",
    "save_state",
]

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$")
_FORMAT = 4
_RETIRED_KEPT = 32
"""How many retired releases' digests the state remembers (newest first)."""


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
    def routing(self) -> Path:
        """Routing changes since `state` was last written, one JSON line each (see the module docstring)."""
        return self.root / "routing.jsonl"

    @property
    def socket(self) -> Path:
        return self.root / "control.sock"

    @property
    def lock(self) -> Path:
        return self.root / "supervisor.lock"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def proxy_socket(self) -> Path:
        """The proxy process's control socket."""
        return self.root / "proxy.sock"

    @property
    def proxy_log(self) -> Path:
        return self.root / "proxy.log"

    @property
    def proxy_pid(self) -> Path:
        """`{"pid": ..., "pid_start": ...}` of the proxy process, written when it starts serving."""
        return self.root / "proxy.json"

    @property
    def releases(self) -> Path:
        """Where each release's files are captured (`releases/<version>/`)."""
        return self.root / "releases"

    def release_log(self, version: str) -> Path:
        """Replica 0's log (the only one of a single-process release)."""
        # ':' is legal in a label but awkward in file names on some tools; '+' and '.' are fine.
        return self.root / "logs" / f"{check_version(version).replace(':', '_')}.log"

    def replica_log(self, version: str, index: int) -> Path:
        # '@' never occurs in a label, so `v1@1.log` cannot be another release's log.
        base = self.release_log(version)
        return base if index == 0 else base.with_name(f"{base.stem}@{index}.log")

    def replica_logs(self, version: str) -> list[Path]:
        """Every replica log of `version` on disk, replica 0 first."""
        base = self.release_log(version)
        found = []
        for path in base.parent.glob(f"{base.stem}@*.log"):
            index = path.stem.rpartition("@")[2]
            if index.isdigit():
                found.append((int(index), path))
        return ([base] if base.exists() else []) + [path for _, path in sorted(found)]


@dataclass(frozen=True, slots=True)
class Replica:
    """One process of a release: its port, its command (`{port}` substituted) and its identity."""

    port: int
    argv: tuple[str, ...]
    pid: int = 0
    pid_start: int = 0
    """The process's start time in clock ticks (/proc/<pid>/stat field 22): guards against pid reuse."""


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """One release: how to (re)start its replicas and how to recognise them after a restart.

    Replica 0 is described inline (`port`, `argv`, `pid`, `pid_start`: the single-process shape),
    the others in `more`; `replicas` gives all of them in order. The release's direct address is
    replica 0's port.
    """

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
    image: str | None = None
    more: tuple[Replica, ...] = ()
    """Replicas 1 to n-1."""
    release_dir: str = ""
    """The release's snapshot, where it runs from ('' for a release recorded before snapshots)."""
    tree_digest: str = ""
    """The snapshot's tree digest at capture: checked before every start and restart."""
    gated: tuple[tuple[str, str, str], ...] = ()
    """(section, workspace-relative path, digest) of each gated artifact the snapshot covers."""

    @classmethod
    def of(cls, version: str, replicas: Sequence[Replica], **fields: Any) -> ReleaseRecord:
        """A record for `replicas` (at least one); `fields` are the release-wide ones."""
        first, *rest = replicas
        return cls(version, first.port, first.argv, pid=first.pid, pid_start=first.pid_start, more=(*rest,), **fields)

    @property
    def replicas(self) -> tuple[Replica, ...]:
        return (Replica(self.port, self.argv, self.pid, self.pid_start), *self.more)

    def with_replica(self, index: int, replica: Replica) -> ReleaseRecord:
        """This record with replica `index` replaced (a restart gives it a new pid)."""
        if index == 0:
            return replace(self, port=replica.port, argv=replica.argv, pid=replica.pid, pid_start=replica.pid_start)
        more = list(self.more)
        more[index - 1] = replica
        return replace(self, more=tuple(more))


@dataclass(frozen=True, slots=True)
class RetiredRelease:
    """What is remembered of a retired release (its snapshot is gone): enough to recognise its files."""

    version: str
    tree_digest: str
    image: str | None
    gated: tuple[tuple[str, str, str], ...]
    retired_at: float


@dataclass(frozen=True, slots=True)
class State:
    listen: str
    releases: Mapping[str, ReleaseRecord] = field(default_factory=dict)
    weights: Mapping[str, int] = field(default_factory=dict)
    live: str | None = None
    """The last release that took all traffic: the one to return to when a canary is abandoned."""
    next_seq: int = 1
    drain_seconds: float = 10.0
    """local.drain_seconds as last configured: a supervisor started again without a config drains this long."""
    data_plane: DataPlane = DEFAULT
    """local.proxy and local.max_connections as last configured (for the same reason)."""
    retired: tuple[RetiredRelease, ...] = ()
    """Newest first, at most `_RETIRED_KEPT`."""
    sticky: StickyRule | None = None
    """The sticky rule (`{cookie, header}`) of the split in `weights`: a restarted supervisor that
    pushed the split without it would re-deal every pinned client mid-canary. The pins themselves
    are not kept here: a cookie's is in the client, a header value's in the proxy process."""


def save_state(paths: StatePaths, state: State) -> None:
    """Write the state atomically. No fsync: it must survive our process, not a power cut."""
    sets = _GatedSets()
    doc: dict[str, Any] = {
        "format": _FORMAT,
        "listen": state.listen,
        "live": state.live,
        "next_seq": state.next_seq,
        "drain_seconds": state.drain_seconds,
        "proxy": state.data_plane.kind,
        "max_connections": state.data_plane.max_connections,
        "weights": dict(state.weights),
        "releases": [_dump_release(r, sets) for r in sorted(state.releases.values(), key=lambda r: r.seq)],
        "retired": [
            {**asdict(replace(r, gated=())), "gated": sets.index_of(r.gated)} for r in state.retired[:_RETIRED_KEPT]
        ],
        "sticky": state.sticky.to_dict() if state.sticky else None,
    }
    doc["gated_sets"] = sets.listed
    tmp = paths.state.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        # One line: json's C encoder (an indented dump is pure Python).
        handle.write(json.dumps(doc))
    os.replace(tmp, paths.state)
    paths.routing.unlink(missing_ok=True)  # the state holds the routing now


def save_routing(
    paths: StatePaths, weights: Mapping[str, int], live: str | None, sticky: StickyRule | None = None
) -> None:
    """Record a new routing (its sticky rule with it) by one append to the journal (see the module docstring)."""
    doc = {"weights": dict(weights), "live": live, "sticky": sticky.to_dict() if sticky else None}
    line = json.dumps(doc).encode() + b"\n"
    fd = os.open(paths.routing, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)  # one write: a process killed mid-call leaves all of it or none
    finally:
        os.close(fd)


def _routing(paths: StatePaths) -> tuple[dict[str, int], str | None, StickyRule | None] | None:
    """(weights, live, sticky) from the journal's last whole line; None without one. Raises ValueError."""
    try:
        lines = paths.routing.read_bytes().split(b"\n")[:-1]  # a cut last line has no newline
    except FileNotFoundError:
        return None
    if not lines:
        return None
    try:
        doc = json.loads(lines[-1])
        weights = {str(k): int(v) for k, v in doc["weights"].items()}
        return weights, doc.get("live"), StickyRule.from_dict(doc.get("sticky"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(
            f"{paths.routing}: unreadable routing journal ({exc!r}); stop the supervisor and delete the file "
            f"(the routing in {paths.state.name} then applies)"
        ) from exc


def load_state(paths: StatePaths) -> State | None:
    """The saved state, or None when there is none. Raises ValueError naming the file if unreadable."""
    try:
        raw = paths.state.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    routing = _routing(paths)
    try:
        doc = json.loads(raw)
        if doc.get("format", 1) not in (1, 2, 3, _FORMAT):
            raise ValueError(f"format {doc['format']!r} is newer than this supervisor understands")
        sets = [tuple((str(a), str(b), str(c)) for a, b, c in listed) for listed in doc.get("gated_sets", ())]
        releases = {}
        for item in doc["releases"]:
            record = _load_release(item, sets)
            releases[record.version] = record
        saved = {str(k): int(v) for k, v in doc["weights"].items()}
        weights, live, sticky = routing or (saved, doc.get("live"), StickyRule.from_dict(doc.get("sticky")))
        return State(
            listen=str(doc["listen"]),
            releases=releases,
            weights=weights,
            live=live,
            next_seq=int(doc.get("next_seq", len(releases) + 1)),
            drain_seconds=float(doc.get("drain_seconds", 10.0)),
            data_plane=DataPlane(
                str(doc.get("proxy", "python")), int(doc.get("max_connections", DEFAULT_MAX_CONNECTIONS))
            ),
            retired=tuple(_load_retired(item, sets) for item in doc.get("retired", [])),
            sticky=sticky,
        )
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{paths.state}: unreadable supervisor state ({exc!r}); stop the supervisor and delete the file "
            "to start from scratch"
        ) from exc


class _GatedSets:
    """The distinct gated lists of one save, in order of first use (a list is a dict key: hashed and
    compared by content, a fraction of a millisecond for thousands of files)."""

    def __init__(self) -> None:
        self._index: dict[tuple[tuple[str, str, str], ...], int] = {}
        self.listed: list[tuple[tuple[str, str, str], ...]] = []

    def index_of(self, gated: tuple[tuple[str, str, str], ...]) -> int:
        at = self._index.setdefault(gated, len(self.listed))
        if at == len(self.listed):
            self.listed.append(gated)
        return at


def _gated(value: Any, sets: Sequence[tuple[tuple[str, str, str], ...]]) -> tuple[tuple[str, str, str], ...]:
    """A release's gated list from its saved form: an index into `gated_sets` (format 4), or the list (3)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return sets[value]
    return tuple((str(a), str(b), str(c)) for a, b, c in value or ())


def _dump_release(record: ReleaseRecord, sets: _GatedSets) -> dict[str, Any]:
    doc = asdict(replace(record, gated=()))
    for name in ("port", "argv", "pid", "pid_start", "more"):
        del doc[name]
    doc["replicas"] = [asdict(replica) for replica in record.replicas]
    doc["gated"] = sets.index_of(record.gated)
    return doc


def _load_release(item: dict[str, Any], sets: Sequence[tuple[tuple[str, str, str], ...]]) -> ReleaseRecord:
    # Format 1 kept the one process inline: it becomes the only replica.
    listed = item.pop("replicas", None)
    if listed is None:
        listed = [{name: item.pop(name) for name in ("port", "argv", "pid", "pid_start") if name in item}]
    replicas = [Replica(**{**replica, "argv": tuple(replica["argv"])}) for replica in listed]
    if not replicas:
        raise ValueError(f"release {item.get('version')!r} has no replicas")
    item["env"] = tuple(tuple(pair) for pair in item["env"])
    item["gated"] = _gated(item.get("gated"), sets)
    return ReleaseRecord.of(item.pop("version"), replicas, **item)


def _load_retired(item: dict[str, Any], sets: Sequence[tuple[tuple[str, str, str], ...]]) -> RetiredRelease:
    return RetiredRelease(
        version=str(item["version"]),
        tree_digest=str(item["tree_digest"]),
        image=item.get("image"),
        gated=_gated(item.get("gated"), sets),
        retired_at=float(item.get("retired_at", 0.0)),
    )
