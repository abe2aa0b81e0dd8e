"""One host over SSH: sign in (host key pinned), find its Python, install the orchestrator, run the agent.

`HostConnection.open` checks the host key before anything is sent; `prepare` finds the host's
Python (>= 3.11, or a clear error saying what to install), installs the zipapp (`bundle`) under
`<root>/<version>/` if it is not there with the right digest, and starts the agent (`agent`) whose
JSON lines `call` exchanges. `upload` puts a file there by SFTP under a temporary name, then renames
it. Every SSH or socket failure comes out as `HostLostError` naming the host: the caller decides
what a lost host means for the rollout.
"""

from __future__ import annotations

import json
import logging
import shlex
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko

from orchestrator.errors import DeployError
from orchestrator.platforms.hosts.bundle import Bundle
from orchestrator.platforms.hosts.install import install
from orchestrator.platforms.hosts.settings import HostConfig
from orchestrator.platforms.hosts.trust import HostKeyRefused, Pins, fingerprint

__all__ = ["HostConnection", "HostLostError", "encode"]

log = logging.getLogger(__name__)


_COMMAND_SECONDS = 60.0


def encode(op: str, **args: Any) -> bytes:
    """One request to the agent, as the line `send_encoded` writes."""
    return json.dumps({"op": op, **args}).encode() + b"\n"


class HostLostError(DeployError):
    """The host stopped answering (SSH dropped, timed out, the host is cut off)."""

    def __init__(self, message: str, *, host: str, operation: str) -> None:
        super().__init__(message, platform="hosts", operation=operation)
        self.host = host


class HostConnection:
    def __init__(self, host: HostConfig, *, key: paramiko.PKey, pins: Pins, timeout: float, python: str) -> None:
        self.host = host
        self.name = host.name
        self._key = key
        self._pins = pins
        self._timeout = timeout
        self._python = python
        self._client: paramiko.SSHClient | None = None
        self._agent: paramiko.Channel | None = None
        self._answers: paramiko.ChannelFile | None = None
        self._lock = threading.Lock()
        self.root = ""
        """The host's install root, absolute (known after `prepare`)."""
        self.keeper: dict[str, str] = {}
        """What keeps the host's supervisor (`systemd_unit.Keeper`), known after `prepare`."""

    # --- signing in ------------------------------------------------------------------------------

    def open(self) -> None:
        """Connect and check the host key. Raises HostKeyRefused (nothing sent) or HostLostError."""
        client = paramiko.SSHClient()
        self._pins.apply(client, self.name)
        try:
            client.connect(
                self.host.address,
                port=self.host.port,
                username=self.host.user,
                pkey=self._key,
                timeout=self._timeout,
                banner_timeout=self._timeout,
                auth_timeout=self._timeout,
                look_for_keys=False,
                allow_agent=False,
            )
        except HostKeyRefused:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise self._pins.refusal(self.name, exc.key, fingerprint(exc.expected_key)) from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise DeployError(
                f"host {self.name}: the SSH key was refused for user {self.host.user} ({exc}); add its public key "
                f"to ~{self.host.user}/.ssh/authorized_keys there",
                platform="hosts",
                operation="connect",
            ) from None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            client.close()
            raise self._lost("connect", exc) from exc
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(max(1, int(self._timeout / 2)))
        self._client = client

    # --- the host's Python and the orchestrator on it -------------------------------------------

    def prepare(self, bundle: Bundle, local: dict[str, Any], health: dict[str, Any], settings: dict[str, Any]) -> None:
        """Find Python, install `bundle`, start and configure the agent (which installs the systemd unit
        where it can: `keeper` says what keeps the supervisor). Raises DeployError/HostLostError."""
        self.root, zipapp, lib = install(self, bundle, self._python)
        self._start_agent(zipapp, lib)
        # The first answer waits for the agent to start (Python importing the orchestrator from its zip).
        configured = self.call("configure", timeout=max(self._timeout, 60.0), local=local, health=health, **settings)
        self.keeper = dict(configured["keeper"])

    def _start_agent(self, zipapp: str, lib: str | None) -> None:
        client = self._require("agent")
        command = f"exec {shlex.quote(self._python)} {shlex.quote(zipapp)} --root {shlex.quote(self.root)}"
        if lib is not None:
            command = f"PYTHONPATH={shlex.quote(lib)} {command}"
        try:
            transport = client.get_transport()
            assert transport is not None, "connected in open()"
            channel = transport.open_session(timeout=self._timeout)
            channel.exec_command(command)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._lost("agent", exc) from exc
        self._agent = channel
        self._answers = channel.makefile("rb")

    # --- talking to it ---------------------------------------------------------------------------

    def call(self, op: str, timeout: float | None = None, **args: Any) -> Any:
        """One agent operation's result. Raises DeployError with its refusal, or HostLostError."""
        return self.send(op, timeout, **args)()

    def send(self, op: str, timeout: float | None = None, **args: Any) -> Callable[[], Any]:
        """Send one operation now; the function returned waits for its result (raising as `call`).

        The connection is held until that function is called, so several hosts can be sent an operation
        back to back (a switch) and their answers gathered afterwards.
        """
        return self.send_encoded(encode(op, **args), op, timeout)

    def send_encoded(self, payload: bytes, op: str, timeout: float | None = None) -> Callable[[], Any]:
        """`send` of a request encoded beforehand (`encode`): the write is all that is left to do."""
        self._lock.acquire()
        try:
            if self._agent is None or self._answers is None:
                raise self._lost(op, EOFError("its connection was lost earlier in this run"))
            try:
                self._agent.settimeout(timeout or self._timeout)
                self._agent.sendall(payload)
            except (OSError, paramiko.SSHException, EOFError) as exc:
                self.close()
                raise self._lost(op, exc) from exc
        except BaseException:
            self._lock.release()
            raise

        def answer() -> Any:
            try:
                return self._receive(op)
            finally:
                self._lock.release()

        return answer

    def _receive(self, op: str) -> Any:
        agent, answers = self._agent, self._answers
        if agent is None or answers is None:
            raise self._lost(op, EOFError("its connection was lost earlier in this run"))
        try:
            line = answers.readline()
        except (OSError, paramiko.SSHException, EOFError) as exc:
            self.close()
            raise self._lost(op, exc) from exc
        if not line:
            said = agent.recv_stderr(4096).decode(errors="replace").strip() if agent.recv_stderr_ready() else ""
            self.close()
            raise self._lost(op, EOFError(f"the agent ended{': ' + said[-1000:] if said else ''}"))
        answer = json.loads(line)
        if not answer["ok"]:
            raise DeployError(f"host {self.name}: {answer['error']}", platform="hosts", operation=op)
        return answer["result"]

    def upload(self, path: Path, remote: str) -> None:
        """Put `path` at `remote` (a temporary name first, then renamed), over SFTP. Raises HostLostError."""
        self.sftp_write(remote, path.read_bytes(), "upload")

    def run(self, command: str) -> tuple[int, str, str]:
        """Run one shell command on the host: exit status, stdout, stderr. Raises HostLostError."""
        client = self._require("run")
        try:
            # A command starts a Python on the host: give a busy host longer than an answer to the agent.
            _, stdout, stderr = client.exec_command(command, timeout=max(self._timeout, _COMMAND_SECONDS))
            out, err = stdout.read().decode(), stderr.read().decode()
            return stdout.channel.recv_exit_status(), out, err
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._lost("run", exc) from exc

    def run_checked(self, command: str, operation: str) -> str:
        status, out, err = self.run(command)
        if status != 0:
            raise DeployError(
                f"host {self.name}: `{command}` failed (exit {status}): {err.strip()[-500:]}",
                platform="hosts",
                operation=operation,
            )
        return out

    def transport(self) -> paramiko.Transport:
        transport = self._require("tunnel").get_transport()
        if transport is None or not transport.is_active():
            raise self._lost("tunnel", EOFError("the SSH connection is closed"))
        return transport

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        self._agent = None
        self._answers = None

    @property
    def is_open(self) -> bool:
        return self._agent is not None

    def sftp_write(self, remote: str, data: bytes, operation: str) -> None:
        """Write `data` to `remote.incoming` (0600), then rename it to `remote`. Raises HostLostError."""
        incoming = f"{remote}.incoming"
        try:
            with self._require(operation).open_sftp() as sftp:
                channel = sftp.get_channel()
                if channel is not None:
                    channel.settimeout(self._timeout)
                with sftp.open(incoming, "wb") as f:
                    f.set_pipelined(True)
                    f.write(data)
                sftp.chmod(incoming, 0o600)
                sftp.posix_rename(incoming, remote)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._lost(operation, exc) from exc

    def _require(self, operation: str) -> paramiko.SSHClient:
        if self._client is None:
            raise self._lost(operation, EOFError("not connected"))
        return self._client

    def _lost(self, operation: str, exc: BaseException) -> HostLostError:
        reason = "timed out" if isinstance(exc, socket.timeout | TimeoutError) else f"{type(exc).__name__}: {exc}"
        return HostLostError(
            f"host {self.name} was lost during {operation} ({reason}); it is left as it is for the next run to "
            "reconcile",
            host=self.name,
            operation=operation,
        )
