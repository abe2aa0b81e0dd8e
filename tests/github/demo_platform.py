"""A real, tiny platform for the preview tests: the target of PR 7, a demo app process on loopback.

A platform that cuts over by itself, with `Previews`: `start` starts `python -m orchestrator.demo.app`
on a free port (restarting it for a new version); `remove` stops it. Nothing is faked: the health
flow talks to the process over HTTP.
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
    name = "demo"

    def __init__(self, *, unhealthy: bool = False, broken: bool = False, pr_number: int = 7) -> None:
        self.pr_number = pr_number
        self.unhealthy = unhealthy
        self.broken = broken
        """Refuse to create previews, as a platform whose API is down would."""
        self.running: dict[int, _Running] = {}
        self.created = 0

    def live(self) -> Release | None:
        current = self.running.get(self.pr_number)
        return self._release(current) if current is not None else None

    def live_url(self) -> str:
        current = self.running.get(self.pr_number)
        if current is None:
            raise DeployError("no preview runs", platform="demo", operation="live url")
        return f"http://127.0.0.1:{current.port}"

    def releases(self) -> list[Release]:
        live = self.live()
        return [live] if live is not None else []

    def rollback(self, to: Release) -> None:
        raise DeployError("a preview keeps one release", platform="demo", operation="rollback")

    def start(self, version: str, image: str | None) -> Release:
        pr_number = self.pr_number
        if self.broken:
            raise DeployError("preview platform unavailable", platform="demo", operation="create preview")
        current = self.running.get(pr_number)
        if current is not None and current.version == version and current.process.poll() is None:
            return self._release(current)
        self.remove()
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

    def remove(self) -> bool:
        running = self.running.pop(self.pr_number, None)
        if running is None:
            return False
        running.process.terminate()
        running.process.wait(timeout=5)
        return True

    def close(self) -> None:
        self.remove()

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
