"""Fixtures for the local platform: demo releases, an in-process proxy, and supervised platforms.

Every fixture stops what it started, by pid: the supervisor through its stop verb, then any
process its state file still names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

from orchestrator.contract import LocalConfig
from orchestrator.demo.app import make_server
from orchestrator.platforms.local import LocalPlatform, stop_supervisor
from orchestrator.platforms.local.process import is_alive
from orchestrator.platforms.local.proxy import Limits, Proxy

T = TypeVar("T")

DEMO = (sys.executable, "-m", "orchestrator.demo.app", "--port", "{port}", "--version", "{version}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DemoRelease:
    """A demo app in a thread of this process (for proxy tests that need no supervisor)."""

    def __init__(self, version: str) -> None:
        self.server = make_server(0, version)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def demo_release() -> Iterator[Callable[[str], DemoRelease]]:
    started: list[DemoRelease] = []

    def start(version: str) -> DemoRelease:
        release = DemoRelease(version)
        started.append(release)
        return release

    yield start
    for release in started:
        release.close()


class ProxyHarness:
    """Our proxy on its own event loop thread, listening on a free 127.0.0.1 port."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = self.run(self._make(limits))
        self.port = free_port()
        self.run(self.proxy.serve("127.0.0.1", self.port))

    async def _make(self, limits: Limits | None) -> Proxy:
        return Proxy(limits)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=30)  # a loaded machine can take seconds to start a thread and a loop

    def call(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())

    def add(self, version: str, port: int) -> None:
        self.call(lambda: self.proxy.add_backend(version, port))

    def route(self, weights: dict[str, int]) -> None:
        self.call(lambda: self.proxy.route(weights))

    def close(self) -> None:
        self.run(self.proxy.close())
        # The loop's default executor (name lookups) would otherwise outlive the test by a moment.
        self.run(self.loop.shutdown_default_executor())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


@pytest.fixture
def proxy() -> Iterator[ProxyHarness]:
    harness = ProxyHarness()
    yield harness
    harness.close()


@pytest.fixture
def limited_proxy() -> Iterator[Callable[..., ProxyHarness]]:
    """Builds proxies with some `Limits` changed (keyword arguments); closes them afterwards."""
    made: list[ProxyHarness] = []

    def make(**limits: Any) -> ProxyHarness:
        harness = ProxyHarness(Limits(**limits))
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()


def demo_config(state_dir: Path, **overrides: Any) -> LocalConfig:
    fields: dict[str, Any] = {
        "command": DEMO,
        "listen": f"127.0.0.1:{free_port()}",
        "state_dir": state_dir,
        "drain_seconds": 2.0,
        "startup_timeout_seconds": 10.0,
    }
    fields.update(overrides)
    return LocalConfig(**fields)


def kill_leftovers(state_dir: Path) -> None:
    """Stop the supervisor of `state_dir` and every process it recorded, the proxy process or haproxy
    too (by pid, nothing broader)."""
    with contextlib.suppress(Exception):
        stop_supervisor(state_dir, timeout=10)
    proxy = state_dir / "proxy.json"
    if proxy.exists():
        with contextlib.suppress(Exception):
            os.kill(int(json.loads(proxy.read_text())["pid"]), signal.SIGKILL)
    haproxy = state_dir / "haproxy.pid"
    if haproxy.exists():
        with contextlib.suppress(Exception):
            recorded = json.loads(haproxy.read_text())
            if is_alive(int(recorded["pid"]), int(recorded["pid_start"])):
                os.killpg(int(recorded["pid"]), signal.SIGKILL)  # master and workers: a session of its own
    state = state_dir / "state.json"
    if state.exists():
        with contextlib.suppress(Exception):
            for release in json.loads(state.read_text())["releases"]:
                # Format 2 lists replicas; format 1 had the one process inline.
                for replica in release.get("replicas", [release]):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(int(replica["pid"]), signal.SIGKILL)


@pytest.fixture
def platform_factory(tmp_path: Path) -> Iterator[Callable[..., LocalPlatform]]:
    """Builds LocalPlatforms on the demo app with their own state dirs; stops all of them afterwards."""
    state_dirs: list[Path] = []

    def make(name: str = "state", **overrides: Any) -> LocalPlatform:
        state_dir = tmp_path / name
        state_dirs.append(state_dir)
        return LocalPlatform(demo_config(overrides.pop("state_dir", state_dir), **overrides), tmp_path)

    yield make
    for state_dir in state_dirs:
        kill_leftovers(state_dir)
