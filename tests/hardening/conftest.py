"""Peers for the hardening and record tests: agentbench, a real Prometheus Pushgateway, canary secrets."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from orchestrator.redaction import Secret
from tests.peers.agentbench import AgentbenchPeer
from tests.peers.postgres import free_port

PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"

# Canary values: registered as secrets the way the CLI registers them at start-up; every test that
# handles them proves they never leave in a pair, a row, a request or a log line.
CANARY_TOKEN = "agentbench-token-canary-7c1d"
CANARY_IN_ERROR = "s3cr3t-canary-in-error-9a4b"


@pytest.fixture
def agentbench() -> Iterator[AgentbenchPeer]:
    with AgentbenchPeer(token=CANARY_TOKEN) as peer:
        yield peer


@pytest.fixture
def token() -> Secret:
    return Secret(CANARY_TOKEN, "AGENTBENCH_TOKEN")


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus Pushgateway (Debian package) on 127.0.0.1."""
    if not Path(PUSHGATEWAY).exists() and shutil.which("prometheus-pushgateway") is None:
        pytest.fail("prometheus-pushgateway not installed: apt-get install -y prometheus-pushgateway", pytrace=False)
    binary = PUSHGATEWAY if Path(PUSHGATEWAY).exists() else str(shutil.which("prometheus-pushgateway"))
    port = free_port()
    log = (tmp_path_factory.mktemp("pushgateway") / "pushgateway.log").open("w")
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"pushgateway did not start (see {log.name})", pytrace=False)
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()
