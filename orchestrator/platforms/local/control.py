"""The orchestrator's side of the supervisor: talk to it, start it when needed, show it, stop it.

Every failure surfaces as `DeployError(platform="local", operation=...)` whose message names the
state directory and what to do next.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orchestrator
from orchestrator.errors import DeployError
from orchestrator.platforms.local.channel import reachable
from orchestrator.platforms.local.data_plane import DEFAULT, DataPlane
from orchestrator.platforms.local.process import log_tail
from orchestrator.platforms.local.state import StatePaths, load_state
from orchestrator.platforms.local.status import ProxyStatus, ReleaseStatus, ReplicaStatus, SupervisorStatus

__all__ = [
    "ControlClient",
    "ProxyStatus",
    "ReleaseStatus",
    "ReplicaStatus",
    "SupervisorNotRunningError",
    "SupervisorStatus",
    "ensure_supervisor",
    "launch_supervisor",
    "read_status",
    "readopt",
    "stop_supervisor",
]

_START_SECONDS = 15.0


class SupervisorNotRunningError(DeployError):
    """Nothing answers on the control socket."""


class _ClosedWhileIdle(Exception):
    """A kept connection was found closed before any answer came."""


class ControlClient:
    """Talks to the supervisor of `paths.root` over one connection it keeps between calls (see
    `channel`), so a call is one round trip. Safe to share between threads: a call made while
    another is under way uses a connection of its own."""

    def __init__(self, paths: StatePaths) -> None:
        self.paths = paths
        self._sock: socket.socket | None = None
        self._owner = os.getpid()
        """A forked child must not share the connection with its parent."""
        self._busy = threading.Lock()

    def call(self, op: str, timeout: float = 10.0, **args: Any) -> Any:
        """The operation's result. Raises SupervisorNotRunningError, or DeployError with its refusal."""
        request = json.dumps({"op": op, **args}).encode() + b"\n"
        if not self._busy.acquire(blocking=False):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                return self._answer(op, self._exchange(op, sock, request, timeout, connect=True))
        try:
            kept = self._kept()
            if kept is not None:
                try:
                    return self._answer(op, self._exchange(op, kept, request, timeout, connect=False))
                except _ClosedWhileIdle:
                    # Closed while idle (or the supervisor died on it): every operation is idempotent,
                    # so it goes again on a fresh connection.
                    self.close()
                except BaseException:
                    self.close()  # a timeout, say: its answer may still come, and must not be taken for the next
                    raise
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                data = self._exchange(op, sock, request, timeout, connect=True)
            except BaseException:
                sock.close()
                raise
            self._sock, self._owner = sock, os.getpid()
            return self._answer(op, data)
        finally:
            self._busy.release()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __del__(self) -> None:
        self.close()

    def _kept(self) -> socket.socket | None:
        if self._sock is not None and self._owner != os.getpid():
            self._sock = None  # the parent's: left open for the parent
        return self._sock

    def _exchange(self, op: str, sock: socket.socket, request: bytes, timeout: float, *, connect: bool) -> bytes:
        """One whole answer line. Raises _ClosedWhileIdle (a kept connection found closed before any
        answer), SupervisorNotRunningError (nobody listens) or DeployError (no whole answer)."""
        data = b""
        sock.settimeout(timeout)
        try:
            if connect:
                self._connect(sock)
            sock.sendall(request)
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError, BrokenPipeError) as exc:
            if data:
                raise self._no_answer(op, exc) from exc
            if not connect:
                raise _ClosedWhileIdle from exc
            # Nobody listens, or it died before answering: every operation is idempotent, so the
            # caller may start a supervisor and send it again.
            raise SupervisorNotRunningError(
                f"no local supervisor answers in {self.paths.root}", platform="local", operation=op
            ) from exc
        except OSError as exc:
            raise self._no_answer(op, exc) from exc
        if not data:
            if not connect:
                raise _ClosedWhileIdle
            raise SupervisorNotRunningError(
                f"local supervisor in {self.paths.root} closed the connection during {op!r}",
                platform="local",
                operation=op,
            )
        if not data.endswith(b"\n"):
            raise self._no_answer(op, ConnectionResetError("the answer was cut short"))
        return data

    @staticmethod
    def _answer(op: str, data: bytes) -> Any:
        reply = json.loads(data)
        if not reply["ok"]:
            raise DeployError(str(reply["error"]), platform="local", operation=op)
        return reply["result"]

    def _no_answer(self, op: str, exc: OSError) -> DeployError:
        return DeployError(
            f"local supervisor in {self.paths.root} did not answer {op!r} ({exc!r}); see {self.paths.supervisor_log}",
            platform="local",
            operation=op,
        )

    def _connect(self, sock: socket.socket) -> None:
        with reachable(self.paths.socket) as where:
            sock.connect(where)


def ensure_supervisor(
    paths: StatePaths,
    listen: str,
    timeout: float = _START_SECONDS,
    *,
    drain_seconds: float = 10.0,
    withheld: frozenset[str] = frozenset(),
    data_plane: DataPlane = DEFAULT,
) -> ControlClient:
    """A client for a supervisor serving `listen`, starting one (detached) if none runs.

    Raises DeployError if it does not come up within `timeout` (with its log tail) or if the running
    one serves another address.
    """
    client = ControlClient(paths)
    try:
        status = client.call("status")
    except SupervisorNotRunningError:
        launch_supervisor(paths, listen, drain_seconds, withheld=withheld, data_plane=data_plane)
        status = _wait_until_up(client, timeout)
    if status["listen"] != listen:
        raise DeployError(
            f"the local supervisor in {paths.root} serves {status['listen']}, but local.listen is {listen}: "
            "set local.listen back, or stop the supervisor (stop verb) so it restarts on the new address",
            platform="local",
            operation="supervisor",
        )
    serving = (status.get("proxy") or {}).get("kind", "python")
    if serving != data_plane.kind:
        raise DeployError(
            f"the local supervisor in {paths.root} serves through {serving}, but local.proxy is {data_plane.kind}: "
            "set local.proxy back, or stop the supervisor (stop verb) so it restarts with the new data plane",
            platform="local",
            operation="supervisor",
        )
    return client


_RUNNER_SECRETS = frozenset({"GITHUB_TOKEN", "ACTIONS_RUNTIME_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"})


def release_environment(environ: Mapping[str, str], withheld: frozenset[str]) -> dict[str, str]:
    """The supervisor's (and so every release's) environment: ours, less the Action's inputs (the
    github-token among them), the runner's tokens and the secrets the config names."""
    return {
        name: value
        for name, value in environ.items()
        if not name.startswith("INPUT_") and name not in _RUNNER_SECRETS and name not in withheld
    }


def launch_supervisor(
    paths: StatePaths,
    listen: str,
    drain_seconds: float,
    *,
    withheld: frozenset[str] = frozenset(),
    data_plane: DataPlane = DEFAULT,
) -> None:
    """Start a supervisor daemon for `paths` (it exits at once if one runs). Raises DeployError."""
    paths.root.mkdir(parents=True, exist_ok=True)
    env = release_environment(os.environ, withheld)
    # Run the same orchestrator code as this process, installed or not.
    package_root = str(Path(orchestrator.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", "orchestrator.platforms.local.daemon"]
    argv += ["--state-dir", str(paths.root), "--listen", listen, "--drain-seconds", str(drain_seconds)]
    argv += [*data_plane.argv(), "--daemon"]
    # The launched process forks the daemon and exits at once; it inherits none of our stdio.
    with open(paths.supervisor_log, "ab") as log:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=paths.root,
            env=env,
            start_new_session=True,
            timeout=_START_SECONDS,
            check=False,
        )
    if done.returncode != 0:
        raise DeployError(
            f"could not start the local supervisor (exit {done.returncode}); last lines of "
            f"{paths.supervisor_log}:\n{log_tail(paths.supervisor_log)}",
            platform="local",
            operation="supervisor",
        )


def _wait_until_up(client: ControlClient, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result: dict[str, Any] = client.call("status")
            return result
        except SupervisorNotRunningError:
            if time.monotonic() >= deadline:
                log = client.paths.supervisor_log
                raise DeployError(
                    f"the local supervisor did not answer within {timeout:g} s; last lines of {log}:\n{log_tail(log)}",
                    platform="local",
                    operation="supervisor",
                ) from None
            time.sleep(0.02)


def readopt(paths: StatePaths, *, withheld: frozenset[str] = frozenset()) -> ControlClient | None:
    """A client for the supervisor of `paths`, starting it again if it is gone while its state remains.

    None when no supervisor runs and there is no state (nothing was deployed, or it was stopped).
    The restarted supervisor adopts the proxy process and the replicas that still run, and restarts
    the others from their snapshots. Raises DeployError if the state is unreadable or it does not start.
    """
    client = ControlClient(paths)
    try:
        client.call("status")
        return client
    except SupervisorNotRunningError:
        pass
    try:
        saved = load_state(paths)
    except ValueError as exc:
        raise DeployError(str(exc), platform="local", operation="supervisor") from exc
    if saved is None:
        return None
    return ensure_supervisor(
        paths, saved.listen, drain_seconds=saved.drain_seconds, withheld=withheld, data_plane=saved.data_plane
    )


def read_status(state_dir: Path) -> SupervisorStatus | None:
    """What the supervisor of `state_dir` runs and routes, or None if none is running."""
    try:
        return SupervisorStatus.from_dict(ControlClient(StatePaths(state_dir)).call("status", gated=True))
    except SupervisorNotRunningError:
        return None


def stop_supervisor(state_dir: Path, timeout: float = 30.0) -> list[str]:
    """Stop every release process and the proxy, then the supervisor; return the stopped versions.

    A supervisor that is gone while its state remains (the releases, perhaps the proxy, still run) is
    started again first, so that it stops them. Idempotent: returns [] when nothing is left to stop.
    Raises DeployError if it does not exit in time.
    """
    paths = StatePaths(state_dir)
    client = readopt(paths)
    if client is None:
        return []
    try:
        status = client.call("status")
        stopped: list[str] = client.call("shutdown", timeout=timeout)["stopped"]
    except SupervisorNotRunningError:
        return []
    deadline = time.monotonic() + timeout
    while _pid_exists(int(status["pid"])):
        if time.monotonic() >= deadline:
            raise DeployError(
                f"the local supervisor (pid {status['pid']}) did not exit within {timeout:g} s; "
                f"kill it by pid and see {client.paths.supervisor_log}",
                platform="local",
                operation="stop",
            )
        time.sleep(0.02)
    return stopped


def _pid_exists(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"
