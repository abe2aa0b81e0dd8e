"""The supervisor as a daemon process: detach, take the state directory's lock, run.

Run as `python -m orchestrator.platforms.local.daemon --state-dir D --listen HOST:PORT [--drain-seconds S] --daemon`
(the `control` module does this). With `--daemon` it forks, starts a new session and points
stdin/stdout at /dev/null and stderr at `supervisor.log`, so whoever launched it (a runner step
capturing output) never waits on it (DESIGN.md §5, trap 2). One supervisor owns a state
directory: a second one started beside it exits at once.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import sys
from pathlib import Path

from orchestrator.platforms.local import event_loop
from orchestrator.platforms.local.data_plane import DEFAULT_MAX_CONNECTIONS, KINDS, DataPlane
from orchestrator.platforms.local.state import StatePaths
from orchestrator.platforms.local.supervisor import Supervisor
from orchestrator.redaction import install_filter

__all__ = ["main"]

log = logging.getLogger(__name__)


def _daemonize(paths: StatePaths) -> None:
    """Fork into a new session with no inherited stdio; the launching process returns at once."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    logfd = os.open(paths.supervisor_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.dup2(logfd, 2)
    os.close(devnull)
    os.close(logfd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="deploy-orchestrator local platform supervisor")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--drain-seconds", type=float, default=10.0, help="how long SIGTERM lets requests finish")
    parser.add_argument("--proxy", choices=KINDS, default="python", help="the data plane on the public address")
    parser.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS, help="client connection cap")
    parser.add_argument("--daemon", action="store_true", help="detach: fork, new session, no stdio")
    args = parser.parse_args(argv)
    paths = StatePaths(args.state_dir.resolve())
    paths.root.mkdir(parents=True, exist_ok=True)
    if args.daemon:
        _daemonize(paths)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    install_filter(handler)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    lock_fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        # Two deploys raced to start one: the other one serves; both talk to it.
        log.info("another supervisor already owns %s", paths.root)
        return 0
    os.chdir(paths.root)
    try:
        data_plane = DataPlane(args.proxy, args.max_connections)
        return event_loop.run(Supervisor(paths, args.listen, args.drain_seconds, data_plane).run())
    finally:
        os.close(lock_fd)


if __name__ == "__main__":
    sys.exit(main())
