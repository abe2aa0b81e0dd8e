"""Paths from users, resolved and read without hanging, looping or reading without bound.

Every path the run reads because a user named it (the config file, migrations, module
manifests, the event payload) goes through here. A symlink loop becomes a `ConfigError`
naming the path instead of `RuntimeError`; a FIFO, socket or device is refused by its kind
instead of being opened (opening a FIFO blocks until a writer appears: the run would hang);
a file is opened with O_NONBLOCK and checked with fstat before a byte is read, so swapping
a regular file for a FIFO between the check and the read cannot hang the run either; and a
read never takes more than its limit.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from orchestrator.errors import ConfigError

__all__ = [
    "DirectoryResolver",
    "ListedFile",
    "describe_kind",
    "hash_regular",
    "open_regular",
    "read_regular",
    "require_kind",
    "resolve_safely",
    "sql_files_below",
]

_CHUNK = 1 << 20

_KINDS = (
    (stat.S_ISREG, "a regular file"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def describe_kind(mode: int) -> str:
    """`a FIFO (named pipe)`, `a directory`, ... for an `st_mode`."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a special file"


def resolve_safely(path: Path, *, field: str, shown: str | None = None) -> Path:
    """`path` with every symlink resolved (it need not exist). Raises ConfigError on a loop or an
    unreadable component, naming `field` and the path as the user wrote it (`shown`)."""
    name = shown if shown is not None else str(path)
    if "\x00" in str(path):
        raise ConfigError(f"{field}: {name!r} contains a NUL byte; remove it")
    try:
        return path.resolve()
    except RuntimeError:  # Python 3.11 reports a symlink loop this way
        raise ConfigError(f"{field}: {name} is a symlink loop; point the link at a real file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{field}: {name} is a symlink loop; point the link at a real file") from None
        raise ConfigError(f"{field}: cannot resolve {name}: {exc.strerror}") from None


class DirectoryResolver:
    """`resolve_safely` for many files in few directories: each directory is resolved once, then a file
    that is not itself a symlink resolves to its resolved directory and its name (one lstat, not one
    per path component: thousands of migration files took seconds)."""

    def __init__(self, *, field: str) -> None:
        self._field = field
        self._directories: dict[Path, Path] = {}

    def resolve(self, path: Path, *, shown: str | None = None) -> Path:
        name = path.name
        if name in ("", ".", "..") or os.path.islink(path):
            return resolve_safely(path, field=self._field, shown=shown)
        parent = self._directories.get(path.parent)
        if parent is None:
            parent = self._directories[path.parent] = resolve_safely(path.parent, field=self._field, shown=shown)
        return parent / name


@dataclass(frozen=True, slots=True)
class ListedFile:
    """One `*.sql` entry below a listed directory, as `sorted(directory.rglob("*.sql"))` finds it."""

    relative: str
    """POSIX path below the directory."""
    path: Path
    """The directory joined with `relative`: already resolved unless `is_link` (no symlinked directory
    is entered, and the directory was resolved)."""
    is_link: bool
    is_dir: bool
    is_file: bool
    """Of the entry itself (a symlink is neither: resolve it to know)."""


def sql_files_below(directory: Path) -> list[ListedFile]:
    """Every entry named `*.sql` below the resolved `directory`, in `sorted(rglob)` order, with the kind
    its directory listing gave (no call per file: thousands of migration files took seconds through
    pathlib). Like rglob, symlinked directories are not entered and unreadable directories are skipped."""
    found: list[tuple[str, ListedFile]] = []

    def walk(folder: Path, prefix: str) -> None:
        try:
            with os.scandir(folder) as scan:
                entries = list(scan)
        except PermissionError:
            return
        for entry in entries:
            relative = prefix + entry.name
            link = entry.is_symlink()
            if entry.name.endswith(".sql"):
                is_dir = not link and entry.is_dir(follow_symlinks=False)
                is_file = not link and entry.is_file(follow_symlinks=False)
                listed = ListedFile(relative, folder / entry.name, link, is_dir, is_file)
                # Ordered as paths are, part by part: "/" sorts below every character a name can hold.
                found.append((relative.replace("/", "\0"), listed))
            if not link and entry.is_dir(follow_symlinks=False):
                walk(folder / entry.name, relative + "/")

    walk(directory, "")
    found.sort(key=lambda item: item[0])
    return [listed for _, listed in found]


def require_kind(path: Path, *, field: str, shown: str, want: tuple[str, ...]) -> str | None:
    """The kind of an existing `path` when it is one of `want` ("file", "directory"); None when it
    does not exist. Raises ConfigError naming the kind found otherwise (a FIFO, a device, ...)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{field}: {shown} is a symlink loop; point the link at a real file") from None
        raise ConfigError(f"{field}: cannot examine {shown}: {exc.strerror}") from None
    if stat.S_ISREG(mode) and "file" in want:
        return "file"
    if stat.S_ISDIR(mode) and "directory" in want:
        return "directory"
    wanted = " or ".join("a regular file" if w == "file" else "a directory" for w in want)
    raise ConfigError(f"{field}: {shown} is {describe_kind(mode)}, not {wanted}; point it at {wanted}")


def open_regular(path: Path, *, field: str, shown: str | None = None) -> BinaryIO:
    """A binary file object for a regular file, opened without blocking on a FIFO or device.

    Raises ConfigError naming `field` for a missing file, another kind of file, a loop or an
    unreadable file.
    """
    fd, _, _ = _open_regular_fd(path, field=field, name=shown if shown is not None else str(path))
    try:
        # Regular files never block; clear O_NONBLOCK so reads behave as usual.
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path, *, field: str, shown: str | None = None, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes. Never blocks on a FIFO or device.

    Raises ConfigError naming `field` for a missing file, another kind of file, a loop, an
    unreadable file or one over the limit. Reads the descriptor itself, no file object: a run
    reads thousands of small migration files.
    """
    name = shown if shown is not None else str(path)
    fd, size, _ = _open_regular_fd(path, field=field, name=name)
    try:
        if size > limit:
            raise ConfigError(f"{field}: {name} is {size} bytes; the limit is {limit}")
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, max(size + 1, 1 << 16)))):
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {name}: {exc.strerror}") from None
    finally:
        os.close(fd)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(data) > limit:  # grew while we read it
        raise ConfigError(f"{field}: {name} is over {limit} bytes; the limit is {limit}")
    return data


def hash_regular(
    path: Path | str, *, field: str, shown: str | None = None, follow_symlinks: bool = True
) -> tuple[str, int]:
    """(sha256 hex, st_mode) of a regular file's bytes, read through its descriptor (thousands of files
    a snapshot). Without `follow_symlinks`, a symlink is refused, not followed. Raises ConfigError as
    `read_regular` does."""
    name = shown if shown is not None else str(path)
    fd, _, mode = _open_regular_fd(path, field=field, name=name, follow_symlinks=follow_symlinks)
    digest = hashlib.sha256()
    try:
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {name}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return digest.hexdigest(), mode


def _open_regular_fd(path: Path | str, *, field: str, name: str, follow_symlinks: bool = True) -> tuple[int, int, int]:
    """(descriptor, size, mode) of a regular file opened O_NONBLOCK and checked with fstat before any read."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ConfigError(f"{field}: {name} not found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{field}: {name} is a symlink loop; point the link at a real file") from None
        raise ConfigError(f"{field}: cannot read {name}: {exc.strerror}") from None
    except ValueError:  # an embedded NUL byte
        raise ConfigError(f"{field}: {name!r} contains a NUL byte; remove it") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(
                f"{field}: {name} is {describe_kind(info.st_mode)}, not a regular file; point it at a regular file"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size, info.st_mode
