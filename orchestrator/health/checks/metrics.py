"""Metric attempts: are metrics flowing?

Two sources: a Prometheus-compatible query API (`GET {prometheus_url}/api/v1/query?query=...`,
which must answer `status: success` with a non-empty result), or a scrape of the release's own
metrics endpoint (`{base_url}{scrape_path}`, Prometheus text exposition format) that must carry
`series`. With `min`/`max`, every value returned must lie within them. The query source
is not release-specific: it reads whatever Prometheus has, whichever release served.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import requests
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.contract import MetricCheck
from orchestrator.health.checks.base import Attempt, Check
from orchestrator.health.checks.http import Answer, json_of, request, resolve_url, unreachable

__all__ = ["metric_check", "query_values"]


def metric_check(base_url: str, check: MetricCheck) -> Check:
    def attempt(timeout_seconds: float) -> Attempt:
        if check.prometheus_url and check.query:
            return _query_attempt(check, check.prometheus_url, check.query, timeout_seconds)
        return _scrape_attempt(resolve_url(base_url, check.scrape_path or "/metrics"), check, timeout_seconds)

    return Check(
        name=f"metric '{check.name}'",
        endpoint=f"metric:{check.name}",
        timeout_seconds=check.timeout_seconds,
        attempt=attempt,
    )


def query_values(body: Any) -> list[tuple[str, float]]:
    """(labels, value) for every series of an `/api/v1/query` answer; a matrix contributes its last value.

    Raises ValueError with the API's own error when the answer is not a success.
    """
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        kind = body.get("errorType") if isinstance(body, dict) else None
        raise ValueError(f"query not successful: {kind or 'no status: success'}: {error or str(body)[:200]}")
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        return [("scalar", float(result[1]))]
    if kind in ("vector", "matrix") and isinstance(result, list):
        values = []
        for series in result:
            labels = _labels(series.get("metric") or {})
            sample = series.get("value") if kind == "vector" else (series.get("values") or [None])[-1]
            if sample is not None:
                values.append((labels, float(sample[1])))
        return values
    raise ValueError(f"unsupported resultType {kind!r}")


def _query_attempt(check: MetricCheck, prometheus_url: str, query: str, timeout_seconds: float) -> Attempt:
    url = prometheus_url.rstrip("/") + "/api/v1/query?" + urlencode({"query": query})
    try:
        answer = request("GET", url, timeout_seconds)
    except requests.RequestException as exc:
        return unreachable(url, exc)
    try:
        values = query_values(json_of(answer))
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        return Attempt(False, answer.status, f"{query}: {exc} (HTTP {answer.status})")
    if not values:
        return Attempt(False, answer.status, f"{query}: empty result: no series matched, metrics are not flowing")
    return _bounded(check, query, values, answer.status)


def _scrape_attempt(url: str, check: MetricCheck, timeout_seconds: float) -> Attempt:
    try:
        answer = request("GET", url, timeout_seconds)
    except requests.RequestException as exc:
        return unreachable(url, exc)
    if answer.status != 200:
        return Attempt(False, answer.status, f"scrape of {check.scrape_path}: expected 200, got {answer.excerpt()}")
    try:
        values = list(_series(answer, check.series or ""))
    except ValueError as exc:
        return Attempt(False, answer.status, f"scrape of {check.scrape_path} is not Prometheus text format: {exc}")
    if not values:
        return Attempt(False, answer.status, f"scrape of {check.scrape_path} has no series {check.series!r}")
    return _bounded(check, check.series or "", values, answer.status)


def _series(answer: Answer, name: str) -> Iterator[tuple[str, float]]:
    # A counter family `requests` exposes samples `requests_total`; accept either name.
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if name in (sample.name, family.name):
                yield _labels(sample.labels), float(sample.value)


def _bounded(check: MetricCheck, what: str, values: list[tuple[str, float]], status: int) -> Attempt:
    for labels, value in values:
        too_low = check.min is not None and not value >= check.min
        too_high = check.max is not None and not value <= check.max
        if too_low or too_high:
            low = "-inf" if check.min is None else f"{check.min:g}"
            high = "inf" if check.max is None else f"{check.max:g}"
            bounds = f"[{low}, {high}]"
            return Attempt(False, status, f"{what}{labels} = {value:g}, outside {bounds}")
    shown = ", ".join(f"{labels or what}={value:g}" for labels, value in values[:3])
    more = f" (+{len(values) - 3} more)" if len(values) > 3 else ""
    return Attempt(True, status, f"{len(values)} series: {shown}{more}")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
