"""Immutable releases: a release's files, captured once at deploy, and the checks that it still is them.

`capture` copies `local.source` (by default the workspace) into `releases/<version>/` in the state
directory, skipping what is not the release (`.git`, `.venv`, `.deploy-orchestrator`, `__pycache__`,
compiled `*.pyc`, the state directory, sockets and other special files), and returns the tree digest
(`artifacts.digest_module_tree`: paths, contents, exec bits, symlinks). The copy lands under a
temporary name and is renamed into place, so a crash never leaves half a snapshot under the final name.
An approved migration file the live release's snapshot holds with the same bytes, mode and mtime is
hard-linked from it rather than copied, so releases share those inodes. Only migration files: a
release may well write into some file of its own in place (a bundled SQLite file, say), and through a
shared inode that would change the earlier snapshot too, the very release a rollback goes back to;
no release writes its SQL migrations, and the gate holds them to their digests at every deploy.

Every start, restart and rollback runs from the snapshot after `verify` recomputed that digest: a
snapshot that is missing or changed is refused, naming both digests. Where the snapshot covers gated
artifacts (migration files, Odoo module trees inside `local.source`), `check_gated` holds its copies
to the digests the gate approved.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.artifacts import ArtifactDigests, digest_module_tree
from orchestrator.errors import ConfigError

__all__ = [
    "SKIPPED_NAMES",
    "Captured",
    "SnapshotError",
    "approved_migration_paths",
    "capture",
    "check_gated",
    "digest_tree",
    "purge_bytecode",
    "remove",
    "verify",
]

SKIPPED_NAMES = frozenset({".git", ".venv", ".deploy-orchestrator", "__pycache__"})
_INCOMING = ".incoming-"
_CHUNK = 1 << 20


class SnapshotError(Exception):
    """A release's files cannot be captured, or are not what was captured; the message says which and why."""


def digest_tree(directory: Path, *, version: str) -> str:
    """The tree digest of a snapshot. Raises SnapshotError if it is missing or holds what a release cannot."""
    if not directory.is_dir():
        raise SnapshotError(f"release {version}: its snapshot {directory} is missing")
    try:
        return digest_module_tree(directory, field=f"release {version} snapshot")
    except (ConfigError, OSError) as exc:
        raise SnapshotError(f"release {version}: its snapshot {directory} cannot be read: {exc}") from exc


def verify(directory: Path, expected: str, *, version: str) -> None:
    """Raise SnapshotError unless `directory` still has the tree digest recorded at capture."""
    try:
        actual = digest_tree(directory, version=version)
    except SnapshotError as exc:
        raise SnapshotError(f"{exc} (recorded digest {expected}); refusing to run it: deploy it again") from exc
    if actual != expected:
        raise SnapshotError(
            f"release {version}: its snapshot {directory} changed since it was captured "
            f"(recorded digest {expected}, now {actual}); refusing to run it: a release must not write into "
            "its own directory (use a data directory outside it), and a changed snapshot is no longer what "
            "was validated: deploy it again"
        )


@dataclass(frozen=True, slots=True)
class Captured:
    """A snapshot just captured: its tree digest, and the sha256 of each regular file by relative POSIX path."""

    digest: str
    files: Mapping[str, str]


def capture(
    source: Path,
    destination: Path,
    *,
    leave_out: Iterable[Path] = (),
    version: str,
    link_from: Path | None = None,
    linkable: Collection[str] = (),
) -> Captured:
    """Copy `source` into `destination` (replacing whatever is there); the snapshot's tree digest and file digests.

    Each file is read once: hashed as it is copied, so the digest is of exactly the bytes written
    (re-reading thousands of copied files doubled a deploy's time). A file named in `linkable` (paths
    relative to `source`: the approved migration files) that `link_from` (an earlier snapshot) holds at
    the same path with the same bytes, mode and mtime is hard-linked from there instead of copied:
    creating thousands of new files was most of a deploy with nothing changed, and the bytes are
    compared, so the snapshot holds exactly what a copy would. Raises SnapshotError for a symlink
    leading outside `source` or a dangling one.
    """
    top = source.resolve()
    skipped = {str(Path(p).resolve()) for p in leave_out}
    destination.parent.mkdir(parents=True, exist_ok=True)
    incoming = destination.with_name(f"{_INCOMING}{destination.name}-{os.getpid()}")
    # Left by a capture that crashed (one deploy runs at a time per target, so none is under way).
    for stale in destination.parent.glob(f"{_INCOMING}{destination.name}-*"):
        remove(stale)
    walk = _Walk(top, skipped, version, frozenset(linkable))
    base = str(link_from) if link_from is not None and link_from.is_dir() and linkable else None
    try:
        walk.copy(str(top), str(incoming), "", base)
        # A link is checked where it now points, inside the snapshot: the tree digest walks it there.
        digest = walk.digest() if not walk.links else digest_tree(incoming, version=version)
        remove(destination)
        os.rename(incoming, destination)
    except BaseException:
        remove(incoming)
        raise
    return Captured(digest, walk.files)


class _Walk:
    """One capture's copy, gathering the tree digest's records (artifacts.digest_module_tree) on the way.

    Paths are strings: thousands of files went through pathlib here."""

    def __init__(self, top: Path, skipped: set[str], version: str, linkable: frozenset[str]) -> None:
        self.top, self.skipped, self.version, self.linkable = top, skipped, version, linkable
        self.records: list[tuple[bytes, str]] = []
        self.files: dict[str, str] = {}
        self.links = 0

    def copy(self, directory: str, target: str, prefix: str, base: str | None) -> None:
        os.mkdir(target, 0o755)
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in entries:
            name = entry.name
            if name in SKIPPED_NAMES or name.endswith(".pyc") or entry.path in self.skipped:
                continue
            relative, into = prefix + name, os.path.join(target, name)
            held = os.path.join(base, name) if base is not None else None
            if entry.is_symlink():
                _copy_link(self.top, Path(entry.path), Path(into), self.version)
                self.links += 1
            elif entry.is_dir(follow_symlinks=False):
                self.copy(entry.path, into, relative + "/", held)
            elif entry.is_file(follow_symlinks=False):
                sha, mode = _copy_file(entry.path, into, held if relative in self.linkable else None)
                self.files[relative] = sha
                executable = "x" if mode & 0o111 else "-"
                self.records.append((relative.encode(), f"F {executable} {relative}\0{sha}\n"))
            # Sockets, fifos and devices are not files of the release.

    def digest(self) -> str:
        tree = hashlib.sha256()
        for _, record in sorted(self.records):
            tree.update(record.encode())
        return tree.hexdigest()


def _copy_file(source: str, target: str, held: str | None) -> tuple[str, int]:
    """Copy one regular file (mode and times kept), or link `held` if it is the same; (sha256 of its bytes, mode)."""
    reading = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(reading)
        if held is not None:
            linked = _link_same(reading, info, held, target)
            if linked is not None:
                return linked, info.st_mode
            os.lseek(reading, 0, os.SEEK_SET)
        digest = hashlib.sha256()
        writing = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            while chunk := os.read(reading, _CHUNK):
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(writing, view) :]
            os.fchmod(writing, stat.S_IMODE(info.st_mode))
            os.utime(writing, ns=(info.st_atime_ns, info.st_mtime_ns))
        finally:
            os.close(writing)
    finally:
        os.close(reading)
    return digest.hexdigest(), info.st_mode


def _link_same(reading: int, info: os.stat_result, held: str, target: str) -> str | None:
    """Hard-link `held` as `target` if it is a regular file with exactly the bytes, mode and mtime of the
    open source `reading`; the sha256 of those bytes, or None (nothing linked; `reading` has moved)."""
    try:
        # O_NONBLOCK: a FIFO put at that path would block the open forever (regular files ignore it).
        other = os.open(held, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        was = os.fstat(other)
        if not stat.S_ISREG(was.st_mode) or (was.st_mode, was.st_size, was.st_mtime_ns) != (
            info.st_mode,
            info.st_size,
            info.st_mtime_ns,
        ):
            return None
        digest = hashlib.sha256()
        while chunk := os.read(reading, _CHUNK):
            if _read_exactly(other, len(chunk)) != chunk:
                return None
            digest.update(chunk)
        if os.read(other, 1):
            return None
        try:
            os.link(held, target, follow_symlinks=False)
        except OSError:  # the earlier snapshot is being retired, say: copy instead
            return None
        now = os.lstat(target)
        if (now.st_dev, now.st_ino) != (was.st_dev, was.st_ino):  # `held` was replaced after it was compared
            os.unlink(target)
            return None
        return digest.hexdigest()
    finally:
        os.close(other)


def _read_exactly(fd: int, size: int) -> bytes:
    parts, left = [], size
    while left and (part := os.read(fd, left)):
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _copy_link(top: Path, link: Path, target: Path, version: str) -> None:
    resolved = link.resolve()
    relative = link.relative_to(top).as_posix()
    if not resolved.exists():
        raise SnapshotError(
            f"release {version}: symlink {relative} in local.source is dangling; remove it or fix its target"
        )
    if resolved != top and top not in resolved.parents:
        raise SnapshotError(
            f"release {version}: symlink {relative} in local.source leads outside it (to {resolved}); a release "
            "runs from a copy of local.source, so put the file itself inside it"
        )
    text = os.readlink(link)
    # An absolute link would point back into the workspace: made relative, it points into the snapshot.
    os.symlink(text if not os.path.isabs(text) else os.path.relpath(resolved, link.parent.resolve()), target)


def approved_migration_paths(approved: ArtifactDigests, *, workspace: Path, source: Path) -> frozenset[str]:
    """The approved migration files lying inside `source`, relative to it: what `capture` may link."""
    root, top = str(workspace.resolve()), str(source.resolve())
    inside = (_inside(os.path.join(root, key), top) for key, _ in approved.migrations)
    return frozenset(path for path in inside if path is not None and path != ".")


def check_gated(
    approved: ArtifactDigests,
    *,
    workspace: Path,
    source: Path,
    snapshot: Path,
    version: str,
    captured: Mapping[str, str] | None = None,
) -> dict[str, dict[str, str]]:
    """The gated artifacts the snapshot covers, with their digests in it; each must equal the approved one.

    Migration files and Odoo module trees lying inside `source` are digested again from the snapshot,
    a migration file from `captured` (`Captured.files`) when the capture just hashed it as it wrote it.
    Raises SnapshotError listing each one whose copy differs from what the gate approved.
    """
    hashed = captured or {}
    root, top = str(workspace.resolve()), str(source.resolve())
    covered: dict[str, dict[str, str]] = {"migrations": {}, "modules": {}}
    problems: list[str] = []
    for section, pairs in (("migrations", approved.migrations), ("modules", approved.modules)):
        for key, expected in pairs:
            inside = _inside(os.path.join(root, key), top)
            if inside is None:
                continue
            known = hashed.get(inside) if section == "migrations" else None
            actual = known or _digest_copy(snapshot / inside, section, version)
            covered[section][key] = actual
            if actual != expected:
                problems.append(f"{section[:-1]} {key}: approved {expected}, in the snapshot {actual}")
    if problems:
        raise SnapshotError(
            f"release {version}: the captured files are not the ones the gate approved ("
            + "; ".join(problems)
            + "); the workspace changed after the gates: deploy again from a clean checkout"
        )
    return covered


def _inside(path: str, top: str) -> str | None:
    """`path` relative to `top` (POSIX, "." for `top` itself), lexically, or None outside it. On strings:
    thousands of migration files went through pathlib here."""
    normal = os.path.normpath(path)
    if normal == top:
        return "."
    prefix = top if top.endswith("/") else top + "/"
    return normal[len(prefix) :] if normal.startswith(prefix) else None


def _digest_copy(path: Path, section: str, version: str) -> str:
    if section == "modules":
        return digest_tree(path, version=version) if path.is_dir() else "missing"
    try:
        info = path.lstat()
    except FileNotFoundError:
        return "missing"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def purge_bytecode(directory: Path) -> None:
    """Remove `__pycache__` from a snapshot before a start: Python must compile the verified sources.

    The digest leaves compiled files out (Python writes them at run time), so a planted `.pyc`
    would otherwise run unseen.
    """
    # One walk of directory entries (two pathlib globs over a snapshot of thousands of files took seconds).
    try:
        with os.scandir(directory) as scan:
            entries = list(scan)
    except OSError:
        return
    for entry in entries:
        if entry.is_symlink():
            if entry.name.endswith(".pyc"):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
        elif entry.is_dir(follow_symlinks=False):
            if entry.name == "__pycache__":
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                purge_bytecode(Path(entry.path))
        elif entry.name.endswith(".pyc"):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def remove(directory: Path) -> None:
    """Delete a snapshot (or a half-made one). Idempotent."""
    if directory.is_symlink() or directory.is_file():
        directory.unlink()
    elif directory.exists():
        shutil.rmtree(directory)
