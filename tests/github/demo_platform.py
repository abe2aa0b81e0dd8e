"""A real, tiny preview platform for the tests: each PR's preview is a demo app process on loopback.

`create_preview` starts `python -m orchestrator.demo.app` on a free port (restarting it for a new
version) and returns its URL; `delete_preview` stops it. Nothing is faked: the health flow talks
to the process over HTTP.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from orchestrator.errors import DeployError
from orchestrator.platforms.base import Release


@dataclass
class _Running:
    version: str
    port: int
    process: subprocess.Popen[bytes]


class DemoPreviewPlatform:
    def __init__(self, *, unhealthy: bool = False, broken: bool = False) -> None:
        self.unhealthy = unhealthy
        self.broken = broken
        """Refuse to create previews, as a platform whose API is down would."""
        self.running: dict[int, _Running] = {}
        self.created = 0

    def create_preview(self, pr_number: int, repo: str, image: str | None, version: str) -> Release:
        if self.broken:
            raise DeployError("preview platform unavailable", platform="demo", operation="create preview")
        current = self.running.get(pr_number)
        if current is not None and current.version == version and current.process.poll() is None:
            return self._release(current)
        self.delete_preview(pr_number, repo)
        port = _free_port()
        command = [sys.executable, "-m", "orchestrator.demo.app", "--port", str(port), "--version", version]
        if self.unhealthy:
            command.append("--unhealthy")
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        running = _Running(version, port, process)
        self.running[pr_number] = running
        self.created += 1
        _wait_listening(port, process)
        return self._release(running)

    def delete_preview(self, pr_number: int, repo: str) -> bool:
        running = self.running.pop(pr_number, None)
        if running is None:
            return False
        running.process.terminate()
        running.process.wait(timeout=5)
        return True

    def close(self) -> None:
        for pr_number in list(self.running):
            self.delete_preview(pr_number, "")

    @staticmethod
    def _release(running: _Running) -> Release:
        return Release(running.version, url=f"http://127.0.0.1:{running.port}", ref=f"pid-{running.process.pid}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DeployError(f"demo app exited with {process.returncode}", platform="demo", operation="start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise DeployError(f"demo app not listening on {port} after 10 s", platform="demo", operation="start")
