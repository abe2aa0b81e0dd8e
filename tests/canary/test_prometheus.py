"""The canary's counters from Debian's real Prometheus, scraping a real exporter (prometheus_client)
labelled by release: exact counts, status classes and histogram buckets, windows, and a verdict."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from orchestrator.canary.judgement import judge
from orchestrator.canary.prometheus import PrometheusMeter
from orchestrator.contract.canary import AnalysisPolicy, PrometheusSource
from orchestrator.errors import DeployError
from orchestrator.platforms.traffic import window
from tests.peers.prometheus_server import PrometheusServer, _free_port

pytestmark = pytest.mark.slow


class Exporter:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("http_requests", "requests", ["version", "code"], registry=self.registry)
        self.latency = Histogram(
            "http_request_duration_seconds",
            "latency",
            ["version"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
        )
        self.port = _free_port()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)

    def serve(self, version: str, count: int, *, seconds: float, code: str = "200") -> None:
        for _ in range(count):
            self.requests.labels(version=version, code=code).inc()
            self.latency.labels(version=version).observe(seconds)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    made = Exporter()
    yield made
    made.close()


@pytest.fixture
def prometheus(exporter: Exporter) -> Iterator[PrometheusServer]:
    server = PrometheusServer(exporter.port)
    yield server
    server.close()


def _total(result: list[dict[str, object]]) -> float:
    return sum(float(r["value"][1]) for r in result)  # type: ignore[index]


def test_the_meter_reads_each_releases_counters_and_buckets_from_prometheus(
    exporter: Exporter, prometheus: PrometheusServer
) -> None:
    exporter.serve("v1", 300, seconds=0.008)
    exporter.serve("v2", 27, seconds=0.03)
    exporter.serve("v2", 3, seconds=0.03, code="500")
    prometheus.wait_for("sum(http_requests_total)", lambda r: bool(r) and _total(r) == 330)
    meter = PrometheusMeter(PrometheusSource(prometheus.url))

    before = meter.traffic()

    assert before.source == "prometheus"
    v1, v2 = before.get("v1"), before.get("v2")
    assert (v1.requests, v1.statuses) == (300, (0, 300, 0, 0, 0))
    assert (v2.requests, v2.statuses, v2.errors) == (30, (0, 27, 0, 0, 3), 3)
    assert v1.bounds == (0.005, 0.01, 0.02, 0.05, 0.1, 0.5)
    assert v1.buckets == (0, 300, 0, 0, 0, 0, 0) and v2.buckets == (0, 0, 0, 30, 0, 0, 0)

    exporter.serve("v1", 900, seconds=0.008)
    exporter.serve("v2", 90, seconds=0.008)
    exporter.serve("v2", 10, seconds=0.008, code="503")
    prometheus.wait_for("sum(http_requests_total)", lambda r: bool(r) and _total(r) == 1330)
    measured = window(before, meter.traffic())

    assert measured.get("v1").requests == 900 and measured.get("v2").requests == 100
    assert measured.get("v2").buckets == (0, 100, 0, 0, 0, 0, 0)
    verdict = judge(measured, canary="v2", baseline="v1", weight=10, policy=AnalysisPolicy(min_requests=50))
    assert verdict.outcome == "fail" and verdict.metrics[1].outcome == "fail"
    assert verdict.metrics[1].canary == 10.0 and verdict.source == "prometheus"


def test_a_query_prometheus_refuses_is_a_deploy_error_naming_it(prometheus: PrometheusServer) -> None:
    meter = PrometheusMeter(PrometheusSource(prometheus.url, requests_metric="http_requests_total offset"))
    with pytest.raises(DeployError, match=r"Prometheus at http://127\.0\.0\.1:\d+ refused 'sum by \(version, code\)"):
        meter.traffic()


def test_an_unreachable_prometheus_is_a_deploy_error() -> None:
    meter = PrometheusMeter(PrometheusSource(f"http://127.0.0.1:{_free_port()}"), timeout=2)
    with pytest.raises(DeployError, match=r"did not answer"):
        meter.traffic()
