"""How a release is judged healthy: the seed's health check and the checks of post-switch verification."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DatabaseCheck", "HealthCheckConfig", "HttpCheck", "JobCheck", "MetricCheck", "VerificationConfig"]


@dataclass(frozen=True, slots=True)
class HealthCheckConfig:
    endpoint: str
    expected_status: int
    timeout_seconds: float
    retries: int
    interval_seconds: float


@dataclass(frozen=True, slots=True)
class HttpCheck:
    name: str
    path: str | None = None
    url: str | None = None
    method: str = "GET"
    expected_status: int = 200
    body_contains: str | None = None
    max_latency_ms: float | None = None
    timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class DatabaseCheck:
    query: str | None = None
    max_latency_ms: float = 1000.0
    timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class JobCheck:
    name: str
    max_age_seconds: float
    url: str | None = None
    path: str | None = None
    sql: str | None = None
    timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class MetricCheck:
    name: str
    prometheus_url: str | None = None
    query: str | None = None
    scrape_path: str | None = None
    series: str | None = None
    min: float | None = None
    max: float | None = None
    timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class VerificationConfig:
    deadline_seconds: float = 60.0
    retries: int = 1
    interval_seconds: float = 1.0
    consecutive_failures: int = 1
    before_switch: bool = False
    database: DatabaseCheck | None = None
    critical_endpoints: tuple[HttpCheck, ...] = ()
    background_jobs: tuple[JobCheck, ...] = ()
    metrics: tuple[MetricCheck, ...] = ()
