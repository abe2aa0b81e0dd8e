"""The lifecycle of the data-plane process the supervisor drives (our proxy process, or haproxy).

`ProxyLink` and `HaproxyLink` differ in how they talk to their process; how it is started, watched
and stopped is here, once:
- it runs in a session of its own, so it outlives the supervisor, and its process group holds every
  process it forks (haproxy's workers), so a kill reaches all of them, never just the parent;
- it is known by (pid, start ticks), so an adopted process is never confused with a recycled pid;
- every process this supervisor started is reaped: a start that fails kills the group and waits for
  the parent, and a process seen gone is polled, so no zombie is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Literal

from orchestrator.platforms.local.process import is_alive, log_tail, process_start_ticks

__all__ = ["SILENT_SECONDS", "Child", "ChildStartError", "Settled"]

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.01

Settled = Literal["answering", "gone", "silent"]

SILENT_SECONDS = 3.0
"""How long a process that is alive may leave its admin socket unanswered before it is taken for wedged
and killed: within the client's wait for a route call or a supervisor start."""
_STOP_POLL_SECONDS = 0.02


class ChildStartError(Exception):
    """The process exited or did not become ready in time; the message says which, with its log tail."""


class Child:
    """One data-plane process: started here or adopted, watched, stopped, reaped."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.identity: tuple[int, int] | None = None
        """(pid, start ticks) of the process, started or adopted."""
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.identity[0] if self.identity else None

    def adopt(self, identity: tuple[int, int]) -> None:
        """Drive a process some earlier supervisor started (it is not our child: nothing to reap)."""
        self.identity = identity
        self._popen = None

    def alive(self) -> bool:
        if self._popen is not None:
            self._popen.poll()  # reaps it if it exited
        return self.identity is not None and is_alive(*self.identity)

    async def start(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        ready: Callable[[], Awaitable[bool]],
        timeout: float,
        pass_fds: Sequence[int] = (),
        stdout_to_log: bool = False,
        started: Callable[[tuple[int, int]], None] | None = None,
    ) -> None:
        """Start `argv` and return once `ready()` says so. `started` gets its identity at once, before
        the wait: a supervisor that dies during the wait must leave the process findable, not a twin's
        to start beside it. Raises ChildStartError (the process group killed and reaped) if it exits
        first or is not ready within `timeout`; OSError if it cannot run."""
        with open(self.log_path, "ab") as log_file:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file if stdout_to_log else subprocess.DEVNULL,
                stderr=log_file,
                pass_fds=tuple(pass_fds),
                cwd=cwd,
                start_new_session=True,
            )
        self._popen, self.identity = popen, (popen.pid, process_start_ticks(popen.pid) or 0)
        if started is not None:
            started(self.identity)
        deadline = time.monotonic() + timeout
        while not await ready():
            if popen.poll() is not None or time.monotonic() >= deadline:
                code = popen.poll()
                self._kill_group(popen.pid)
                await asyncio.to_thread(popen.wait)
                self._popen = self.identity = None
                reason = f"exited with code {code}" if code is not None else f"was not ready within {timeout:g} s"
                raise ChildStartError(
                    f"{self.name} {reason}; last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            await asyncio.sleep(_POLL_SECONDS)

    async def wait_gone(self, timeout: float) -> None:
        """Wait until the process (asked to stop by the caller) has exited; past `timeout`, kill its group."""
        if self.identity is None:
            return
        pid = self.identity[0]
        deadline = time.monotonic() + timeout
        killed = False
        while self.alive():
            if not killed and time.monotonic() >= deadline:
                log.warning("%s %d overstayed its drain: killing its process group", self.name, pid)
                self._kill_group(pid)
                killed = True
            await asyncio.sleep(_STOP_POLL_SECONDS)

    async def settle(self, answers: Callable[[], Awaitable[bool]], timeout: float) -> Settled:
        """Wait until the process answers or is gone, at most `timeout`. A kill reaches master and
        workers apart, so a socket can refuse while the process still exists (gone, not yet seen gone),
        and a process just started does not answer yet."""
        deadline = time.monotonic() + timeout
        while not await answers():
            if not self.alive():
                return "gone"
            if time.monotonic() >= deadline:
                return "silent"
            await asyncio.sleep(_POLL_SECONDS)
        return "answering"

    async def revive(
        self,
        answers: Callable[[], Awaitable[bool]],
        spawn: Callable[[], Awaitable[None]],
        *,
        unanswered: bool,
        where: str,
    ) -> bool:
        """Run `spawn` if the process is gone; True if it was. `unanswered`: the caller saw it refuse, so
        one still alive is given time to answer or be seen gone (`settle`), and killed if it stays silent."""
        if self.alive():
            if not unanswered:
                return False
            settled = await self.settle(answers, SILENT_SECONDS)
            if settled == "answering":
                return False
            if settled == "silent":
                log.warning("%s %s does not answer on %s: killing it", self.name, self.pid, where)
                await self.kill()
        log.warning("%s %s is gone: starting another on %s", self.name, self.pid, where)
        await spawn()
        return True

    async def kill(self) -> None:
        """Kill the process group now and wait until the process is gone."""
        if self.identity is not None and self.alive():
            self._kill_group(self.identity[0])
            await self.wait_gone(0.0)

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the process itself (not its group), if it is still the one we drive."""
        if self.identity is not None and is_alive(*self.identity):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.identity[0], sig)

    @staticmethod
    def _kill_group(pid: int) -> None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
