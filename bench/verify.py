"""Benchmark: 20 verification checks of 200 ms each, concurrently under one deadline vs one at a time.

The peer is the naive way (the seed's checks awaited one after another): the same planned
checks, run sequentially. Everything is on 127.0.0.1. Last line: `verify: checks=20 wall_s=X`
(the median of the concurrent runs).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.contract import (
    HealthCheckConfig,
    HttpCheck,
    JobCheck,
    MetricCheck,
    VerificationConfig,
)
from orchestrator.health.checks.base import timed
from orchestrator.health.verification import plan_checks, verify
from tests.health.slow_app import SlowApp

DELAY = 0.2
RUNS = 5


def configs(app_url: str) -> tuple[HealthCheckConfig, VerificationConfig]:
    health = HealthCheckConfig(
        endpoint="/health", expected_status=200, timeout_seconds=5, retries=1, interval_seconds=0
    )
    verification = VerificationConfig(
        deadline_seconds=30,
        critical_endpoints=tuple(HttpCheck(name=f"endpoint-{i}", path=f"/endpoint/{i}") for i in range(9)),
        background_jobs=tuple(JobCheck(name=f"job-{i}", path=f"/job/{i}", max_age_seconds=60) for i in range(5)),
        metrics=(
            *(MetricCheck(name=f"query-{i}", prometheus_url=app_url, query="up") for i in range(3)),
            *(MetricCheck(name=f"scrape-{i}", scrape_path="/metrics", series="app_up") for i in range(2)),
        ),
    )
    return health, verification


def main() -> int:
    app = SlowApp(delay=DELAY)
    try:
        health, verification = configs(app.url)
        checks = plan_checks(app.url, health, verification, dsn=None)
        assert len(checks) == 20, len(checks)

        concurrent: list[float] = []
        for _ in range(RUNS):
            verdict = verify(app.url, health, verification, dsn=None)
            if not verdict.passed:
                print("concurrent run failed:", verdict.failures, file=sys.stderr)
                return 1
            concurrent.append(verdict.wall_seconds)

        sequential: list[float] = []
        for _ in range(2):
            started = time.monotonic()
            outcomes = [timed(check, check.timeout_seconds)[1].passed for check in checks]
            sequential.append(time.monotonic() - started)
            if not all(outcomes):
                print("sequential run failed", file=sys.stderr)
                return 1
    finally:
        app.close()

    wall = statistics.median(concurrent)
    naive = statistics.median(sequential)
    print(
        f"20 checks (1 health, 9 endpoints, 5 jobs, 3 Prometheus queries, 2 scrapes), each answered after {DELAY:g} s"
    )
    print()
    print(f"{'mode':<34}{'runs':>6}{'median s':>11}{'min s':>9}{'max s':>9}")
    print(
        f"{'verify(): threads, one deadline':<34}{RUNS:>6}{wall:>11.3f}{min(concurrent):>9.3f}{max(concurrent):>9.3f}"
    )
    print(f"{'peer: one after another (naive)':<34}{2:>6}{naive:>11.3f}{min(sequential):>9.3f}{max(sequential):>9.3f}")
    print()
    print(f"speed-up x{naive / wall:.1f}; target: under 0.3 s, i.e. about the slowest single check ({DELAY:g} s)")
    print(f"verify: checks=20 wall_s={wall:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
