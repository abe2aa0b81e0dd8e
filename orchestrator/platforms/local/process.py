"""Replica processes: launch them, tell whether they still run, wait until they listen, stop them.

Each replica runs in its own session (process group) so that stopping it also stops whatever
its command spawned (a shell wrapper, workers), and so that it outlives the supervisor: a
restarted supervisor re-adopts it by pid, checked against the process's start time so that a
recycled pid is never mistaken for the replica.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from orchestrator.platforms.local.state import ReleaseRecord, Replica

__all__ = [
    "ReleaseStartError",
    "free_port",
    "free_ports",
    "is_alive",
    "log_tail",
    "process_start_ticks",
    "replica_name",
    "spawn",
    "spawn_all",
    "substitute",
    "terminate",
    "terminate_all",
    "wait_all_ready",
    "wait_ready",
]

Popens = Mapping[int, subprocess.Popen[bytes]]
"""Replica index -> the process this supervisor launched for it (re-adopted ones have none)."""

_POLL_SECONDS = 0.02
_TERM_GRACE_SECONDS = 5.0


class ReleaseStartError(Exception):
    """A release did not come up; the message says why and carries the tail of its log."""


def substitute(argv: Iterable[str], *, port: int, version: str, release_dir: str = "") -> tuple[str, ...]:
    # str.replace, not str.format: commands legitimately contain other braces (JSON, shell).
    return tuple(
        arg.replace("{port}", str(port)).replace("{version}", version).replace("{release_dir}", release_dir)
        for arg in argv
    )


def free_port(exclude: Iterable[int] = ()) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (and not in `exclude`)."""
    taken = set(exclude)
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in taken:
            return port
    raise OSError("no free TCP port found on 127.0.0.1")


def free_ports(count: int, exclude: Iterable[int] = ()) -> list[int]:
    """`count` distinct free ports (see `free_port`)."""
    taken = set(exclude)
    ports: list[int] = []
    for _ in range(count):
        ports.append(free_port(taken))
        taken.add(ports[-1])
    return ports


def replica_name(record: ReleaseRecord, index: int) -> str:
    """How messages name a replica: just the release when it has only one."""
    if len(record.more) == 0:
        return f"release {record.version}"
    return f"release {record.version} replica {index}"


def spawn(record: ReleaseRecord, index: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Launch replica `index`'s command, detached, its output appended to `log_path`. Raises OSError."""
    replica = record.replicas[index]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(record.env)
    with open(log_path, "ab") as log:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        log.write(f"--- {stamp} starting {replica_name(record, index)} on port {replica.port}\n".encode())
        log.flush()
        return subprocess.Popen(
            replica.argv,
            cwd=record.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def process_start_ticks(pid: int) -> int | None:
    """The start time of a running process in clock ticks, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def spawn_all(record: ReleaseRecord, log_of: Callable[[int], Path]) -> tuple[ReleaseRecord, Popens]:
    """Launch every replica; the record comes back with their pids.

    Raises OSError (the command cannot run) after killing the replicas already launched.
    """
    popens: dict[int, subprocess.Popen[bytes]] = {}
    try:
        for index, replica in enumerate(record.replicas):
            popen = popens[index] = spawn(record, index, log_of(index))
            started = Replica(replica.port, replica.argv, popen.pid, process_start_ticks(popen.pid) or 0)
            record = record.with_replica(index, started)
    except OSError:
        for popen in popens.values():
            _signal_group(popen.pid, signal.SIGKILL)
            popen.wait()
        raise
    return record, popens


def is_alive(pid: int, pid_start: int) -> bool:
    return pid > 0 and process_start_ticks(pid) == pid_start


async def wait_ready(
    record: ReleaseRecord, index: int, popen: subprocess.Popen[bytes] | None, timeout: float, log_path: Path
) -> None:
    """Return once replica `index` accepts TCP on its port. Raises ReleaseStartError with its log tail."""
    name, port = replica_name(record, index), record.replicas[index].port
    deadline = time.monotonic() + timeout
    while True:
        if popen is not None and popen.poll() is not None:
            raise ReleaseStartError(
                f"{name} exited with code {popen.returncode} during startup; "
                f"last lines of {log_path}:\n{log_tail(log_path)}"
            )
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            pass
        else:
            writer.close()
            return
        if time.monotonic() >= deadline:
            raise ReleaseStartError(
                f"{name} did not accept connections on 127.0.0.1:{port} within "
                f"{timeout:g} s (raise local.startup_timeout_seconds if it is just slow, and check that the "
                f"command listens on {{port}}); last lines of {log_path}:\n{log_tail(log_path)}"
            )
        await asyncio.sleep(_POLL_SECONDS)


async def wait_all_ready(record: ReleaseRecord, popens: Popens, log_of: Callable[[int], Path]) -> None:
    """Return once every replica accepts TCP; raises the first ReleaseStartError, without waiting for the rest."""
    waits = [
        asyncio.create_task(wait_ready(record, index, popens.get(index), record.startup_timeout, log_of(index)))
        for index in range(len(record.replicas))
    ]
    try:
        for first in asyncio.as_completed(waits):
            await first
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def terminate(replica: Replica, popen: subprocess.Popen[bytes] | None) -> None:
    """Stop the replica's whole process group: SIGTERM, then SIGKILL after a grace period."""
    if not is_alive(replica.pid, replica.pid_start):
        if popen is not None:
            popen.poll()
        return
    _signal_group(replica.pid, signal.SIGTERM)
    deadline = time.monotonic() + _TERM_GRACE_SECONDS
    while time.monotonic() < deadline:
        if popen is not None:
            popen.poll()
        if not is_alive(replica.pid, replica.pid_start):
            return
        await asyncio.sleep(_POLL_SECONDS)
    _signal_group(replica.pid, signal.SIGKILL)
    if popen is not None:
        popen.wait()


async def terminate_all(record: ReleaseRecord, popens: Popens) -> None:
    """Stop every replica of the release at once (see `terminate`)."""
    await asyncio.gather(*(terminate(replica, popens.get(i)) for i, replica in enumerate(record.replicas)))


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file ('' if it does not exist)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
