"""Prometheus metrics: the text file parses, the real Pushgateway receives the run, failures are not fatal."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.contract import MetricsConfig
from orchestrator.metrics import build_registry, record_run
from tests.hardening.samples import result
from tests.peers.postgres import free_port


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_textfile_is_written_in_the_exposition_format_with_every_series(tmp_path: Path) -> None:
    path = record_run(result("rolled_back"), MetricsConfig(), tmp_path, environment="production")
    assert path == tmp_path / ".deploy-orchestrator/metrics.prom"
    samples = _samples(path.read_text())
    outcome = frozenset(
        {"status": "rolled_back", "strategy": "blue_green", "platform": "local", "environment": "production"}.items()
    )
    assert samples[("deploy_orchestrator_deploys_total", outcome)] == 1.0
    assert samples[("deploy_orchestrator_deploy_duration_seconds", outcome)] == 12.5
    rollback = frozenset({"environment": "production", "succeeded": "true"}.items())
    assert samples[("deploy_orchestrator_rollback_duration_seconds", rollback)] == 3.25
    failed_probe = frozenset({"environment": "production", "passed": "false"}.items())
    assert samples[("deploy_orchestrator_health_probe_latency_seconds_count", failed_probe)] == 1.0
    assert samples[("deploy_orchestrator_health_probe_latency_seconds_sum", failed_probe)] == pytest.approx(0.042)
    up = frozenset({"environment": "production", "direction": "up", "success": "true"}.items())
    down = frozenset({"environment": "production", "direction": "down", "success": "true"}.items())
    assert samples[("deploy_orchestrator_migration_duration_seconds_sum", up)] == pytest.approx(0.12)
    assert samples[("deploy_orchestrator_migration_duration_seconds_sum", down)] == pytest.approx(0.03)


def test_no_rollback_series_when_no_rollback_happened() -> None:
    from prometheus_client import generate_latest

    text = generate_latest(build_registry(result("success"))).decode()
    assert "deploy_orchestrator_rollback_duration_seconds" not in text
    assert 'status="success"' in text


def test_each_run_gets_a_fresh_registry() -> None:
    first = build_registry(result("success"))
    second = build_registry(result("success"))
    assert (
        first.get_sample_value(
            "deploy_orchestrator_deploys_total",
            {"status": "success", "strategy": "blue_green", "platform": "local", "environment": "default"},
        )
        == second.get_sample_value(
            "deploy_orchestrator_deploys_total",
            {"status": "success", "strategy": "blue_green", "platform": "local", "environment": "default"},
        )
        == 1.0
    )


def test_the_pushgateway_receives_the_run(pushgateway: str, tmp_path: Path) -> None:
    job = f"deploy-orchestrator-{uuid.uuid4().hex[:8]}"
    record_run(result("rolled_back"), MetricsConfig(pushgateway_url=pushgateway, job=job), tmp_path, environment="prod")
    scraped = requests.get(f"{pushgateway}/metrics", timeout=5).text
    ours = {
        name: value
        for (name, labels), value in _samples(scraped).items()
        if dict(labels).get("job") == job and dict(labels).get("environment") == "prod"
    }
    assert ours["deploy_orchestrator_deploys_total"] == 1.0
    assert ours["deploy_orchestrator_deploy_duration_seconds"] == 12.5
    assert ours["deploy_orchestrator_rollback_duration_seconds"] == 3.25
    assert "deploy_orchestrator_health_probe_latency_seconds_count" in ours


def test_a_push_failure_is_logged_and_the_textfile_still_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = MetricsConfig(pushgateway_url=f"http://user:push-canary-pw@127.0.0.1:{free_port()}")
    with caplog.at_level(logging.WARNING):
        path = record_run(result("failed"), config, tmp_path)
    assert path is not None and path.exists()
    assert "metrics push to http://user:***@127.0.0.1" in caplog.text
    assert "push-canary-pw" not in caplog.text


def test_an_unwritable_textfile_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / ".deploy-orchestrator").write_text("a file, not a directory")
    with caplog.at_level(logging.WARNING):
        assert record_run(result("success"), MetricsConfig(), tmp_path) is None
    assert "metrics text file" in caplog.text
