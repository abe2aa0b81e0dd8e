"""The demo application, run as its own process exactly as a release runs."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.platforms.local.conftest import free_port


def start_demo(*flags: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = [sys.executable, "-m", "orchestrator.demo.app", "--port", str(port), "--version", "v7", *flags]
    proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    assert b"listening" in proc.stderr.readline()
    return proc, port


@pytest.fixture
def demo() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def get(port: int, path: str, conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def test_demo_serves_its_version_on_one_keepalive_connection(demo: list[subprocess.Popen[bytes]]) -> None:
    proc, port = start_demo()
    demo.append(proc)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    assert get(port, "/version", conn) == (200, b'{"version": "v7"}\n')
    status, body = get(port, "/", conn)
    assert status == 200 and b"version v7" in body
    assert get(port, "/health", conn) == (200, b'{"status": "ok", "version": "v7"}\n')
    assert get(port, "/nope", conn)[0] == 404


@pytest.mark.parametrize(("flags", "env"), [(("--unhealthy",), {}), ((), {"DEMO_UNHEALTHY": "1"})])
def test_demo_can_start_unhealthy(
    demo: list[subprocess.Popen[bytes]], flags: tuple[str, ...], env: dict[str, str]
) -> None:
    proc, port = start_demo(*flags, env=env)
    demo.append(proc)
    status, body = get(port, "/health")
    assert status == 503 and json.loads(body) == {"status": "unhealthy", "version": "v7"}
    assert get(port, "/version")[0] == 200
