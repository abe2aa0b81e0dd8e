"""Debian's real Prometheus on 127.0.0.1, scraping one local target every second.

`PrometheusServer(target_port)` writes a config and a TSDB directory under a temporary folder, starts
`prometheus` in a session of its own, and waits (bounded) until its API answers; `close()` stops it by
its pid and removes the folder. `wait_for(query, predicate)` polls an instant query until the
predicate holds on its result, so a test waits on what Prometheus has scraped, not on a sleep.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrometheusServer:
    def __init__(self, target_port: int, *, job: str = "deploy-orchestrator", start_seconds: float = 60.0) -> None:
        if not Path(BINARY).exists():
            raise RuntimeError("Debian's prometheus is needed: apt-get install prometheus (.ci/install.sh does)")
        self.folder = Path(tempfile.mkdtemp(prefix="prometheus-peer-"))
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = self.folder / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"scrape_configs: [{{job_name: {job}, static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]}}]\n"
        )
        self._log = open(self.folder / "prometheus.log", "wb")  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen(
            [
                BINARY,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_until_ready(start_seconds)
        except BaseException:
            self.close()
            raise

    def _wait_until_ready(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"prometheus was not ready within {seconds:g} s: {self.log_tail()}")

    def query(self, query: str) -> list[dict[str, Any]]:
        doc = requests.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=10).json()
        return list(doc["data"]["result"])

    def wait_for(self, query: str, holds: Callable[[list[dict[str, Any]]], bool], seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if holds(self.query(query)):
                return
            time.sleep(0.2)
        raise AssertionError(f"prometheus never answered {query!r} as expected: {self.query(query)}")

    def log_tail(self) -> str:
        return (self.folder / "prometheus.log").read_text(errors="replace")[-2000:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)
