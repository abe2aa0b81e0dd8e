"""Prometheus metrics of one run: a text file always, the Pushgateway when configured.

Every run builds a fresh `CollectorRegistry` (no process-wide globals: the CLI, the tests and a
long-lived caller all get exactly this run's series). The text file, in the exposition format,
suits node_exporter's textfile collector; the Pushgateway push replaces the job's group, which
is the push model's meaning of "the last run". Failures are logged, never raised.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, push_to_gateway, write_to_textfile

from orchestrator.contract import MetricsConfig, Result
from orchestrator.redaction import mask_url, redact
from orchestrator.runlog import RunLog

__all__ = ["build_registry", "record_run"]

_logger = logging.getLogger(__name__)

_PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_MIGRATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


def build_registry(result: Result, *, environment: str | None = None) -> CollectorRegistry:
    """This run's series. Pure: nothing is written or sent."""
    registry = CollectorRegistry()
    details = result.deployment_details
    env = environment or "default"
    outcome = {"status": result.status, "strategy": details.strategy, "platform": details.platform, "environment": env}

    Counter(
        "deploy_orchestrator_deploys",
        "Runs by outcome (status), strategy and platform.",
        list(outcome),
        registry=registry,
    ).labels(**outcome).inc()
    Gauge(
        "deploy_orchestrator_deploy_duration_seconds",
        "Wall time of the run, gates to record.",
        list(outcome),
        registry=registry,
    ).labels(**outcome).set(details.duration_seconds)
    Gauge(
        "deploy_orchestrator_last_run_timestamp_seconds",
        "When the run finished (Unix time).",
        ["environment"],
        registry=registry,
    ).labels(environment=env).set_to_current_time()
    if result.rollback.triggered:
        succeeded = "false" if result.rollback.succeeded is False else "true"
        Gauge(
            "deploy_orchestrator_rollback_duration_seconds",
            "How long the rollback took.",
            ["environment", "succeeded"],
            registry=registry,
        ).labels(environment=env, succeeded=succeeded).set(result.rollback.duration_seconds or 0.0)
    probes = Histogram(
        "deploy_orchestrator_health_probe_latency_seconds",
        "Latency of every health probe and verification check of the run.",
        ["environment", "passed"],
        buckets=_PROBE_BUCKETS,
        registry=registry,
    )
    for probe in result.health_checks:
        probes.labels(environment=env, passed=str(probe.passed).lower()).observe(probe.response_time_ms / 1000.0)
    migrations = Histogram(
        "deploy_orchestrator_migration_duration_seconds",
        "Duration of each migration applied (up) or undone (down).",
        ["environment", "direction", "success"],
        buckets=_MIGRATION_BUCKETS,
        registry=registry,
    )
    for migration in result.migrations_applied:
        migrations.labels(
            environment=env, direction=migration.direction, success=str(migration.success).lower()
        ).observe(migration.duration_ms / 1000.0)
    return registry


def record_run(
    result: Result,
    config: MetricsConfig,
    workspace: Path,
    *,
    environment: str | None = None,
    log: RunLog | None = None,
) -> Path | None:
    """Write the text file (`config.textfile`, relative to the workspace) and push if configured.

    Returns the text file's path, or None if it could not be written. Never raises.
    """
    registry = build_registry(result, environment=environment)
    path = workspace / config.textfile
    written: Path | None = path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written to a temporary file and renamed: a scraper never reads half a file.
        write_to_textfile(str(path), registry)
    except OSError as exc:
        _warn(log, f"metrics text file {path} not written: {exc.strerror}")
        written = None
    if config.pushgateway_url:
        target = mask_url(config.pushgateway_url)
        try:
            push_to_gateway(
                config.pushgateway_url,
                job=config.job,
                registry=registry,
                grouping_key={"environment": environment or "default"},
                timeout=5,
            )
        except Exception as exc:
            # urllib raises several unrelated types (URLError, HTTPError, OSError, ValueError);
            # whichever it is, metrics must not fail the deploy.
            _warn(log, f"metrics push to {target} failed: {redact(type(exc).__name__ + ': ' + str(exc))}")
        else:
            _logger.info("metrics pushed to %s (job %s)", target, config.job)
    return written


def _warn(log: RunLog | None, message: str) -> None:
    if log is not None:
        log.warn(message)
    else:
        _logger.warning("%s", message)
