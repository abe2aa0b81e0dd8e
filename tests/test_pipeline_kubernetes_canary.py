"""A judged canary on Kubernetes: the real `kubernetes` client against the API emulator, the counters
from Debian's real Prometheus scraping an exporter that stands in for the releases' own metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.canary.test_prometheus import Exporter
from tests.peers.k8s_emulator import K8sEmulator
from tests.peers.prometheus_server import PrometheusServer
from tests.test_pipeline_kubernetes import deploy, selector
from tests.test_pipeline_kubernetes import emu as emu

pytestmark = pytest.mark.slow


@pytest.fixture
def metrics() -> Iterator[tuple[Exporter, PrometheusServer]]:
    exporter = Exporter()
    server = PrometheusServer(exporter.port)
    yield exporter, server
    server.close()
    exporter.close()


def test_a_canary_failing_on_prometheus_counters_is_rolled_back(
    tmp_path: Path, emu: K8sEmulator, pg_dsn: str, metrics: tuple[Exporter, PrometheusServer]
) -> None:
    exporter, prometheus = metrics
    stop = threading.Event()

    def traffic() -> None:  # the releases' own request metrics, as their pods would export them
        while not stop.wait(0.05):
            exporter.serve("v1", 18, seconds=0.01)
            exporter.serve("v2", 4, seconds=0.01)
            exporter.serve("v2", 1, seconds=0.01, code="500")

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        done = deploy(
            tmp_path,
            emu,
            pg_dsn,
            "v2",
            strategy="canary",
            canary={
                "steps": [{"weight": 50, "pause_seconds": 1}, {"weight": 100}],
                "analysis": {
                    "prometheus_url": prometheus.url,
                    "min_requests": 50,
                    "extend_seconds": 0.5,
                    "max_extensions": 60,
                },
            },
        )
    finally:
        stop.set()
        worker.join()

    assert done.exit_code == 1 and done.result is not None and done.result.status == "rolled_back"
    judged = done.result.to_dict()["canary_analysis"]
    assert judged[-1]["outcome"] == "fail" and judged[-1]["source"] == "prometheus"
    assert judged[-1]["metrics"][1]["canary"] == pytest.approx(20.0, abs=5)
    assert selector(emu) == "v1"
