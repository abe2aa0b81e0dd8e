"""The data plane's counters from Prometheus (Kubernetes): two instant queries over its HTTP API.

    sum by (<version label>, code) (<requests metric>{job="<job>"})
    sum by (<version label>, le) (<duration metric>_bucket{job="<job>"})

Both are cumulative counters, as the proxy's are, so a window is the difference of two readings
(`traffic.window`; a counter reset, a pod restarted, starts the window again). The version label is
whatever the scrape config makes of the pods' `deploy-orchestrator/version` label (`version` by
default); `code` is the HTTP status (a non-numeric one counts as unanswered); `le` the buckets' bounds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import requests

from orchestrator.contract.canary import PrometheusSource
from orchestrator.errors import DeployError
from orchestrator.platforms.traffic import ReleaseTraffic, TrafficSample

__all__ = ["PrometheusMeter"]


class PrometheusMeter:
    """A `TrafficMeter` reading Prometheus. Raises DeployError when it cannot be read."""

    def __init__(self, source: PrometheusSource, *, session: requests.Session | None = None, timeout: float = 10.0):
        self.source = source
        self._session = session or requests.Session()
        self._timeout = timeout

    def traffic(self) -> TrafficSample:
        counts_query, buckets_query = self.source.queries()
        label = self.source.version_label
        statuses: dict[str, list[int]] = {}
        failed: dict[str, int] = {}
        for metric, value in self._query(counts_query):
            version = metric.get(label)
            if version is None:
                continue
            code = str(metric.get("code", ""))
            statuses.setdefault(version, [0, 0, 0, 0, 0])
            if code.isdigit() and 100 <= int(code) < 600:
                statuses[version][int(code) // 100 - 1] += value
            else:
                failed[version] = failed.get(version, 0) + value
        cumulative: dict[str, dict[float, int]] = {}
        for metric, value in self._query(buckets_query):
            version, le = metric.get(label), metric.get("le")
            if version is not None and le is not None:
                cumulative.setdefault(version, {})[float(le)] = value
        releases = {}
        for version in statuses.keys() | failed.keys():
            counts = statuses.get(version, [0, 0, 0, 0, 0])
            lost = failed.get(version, 0)
            bounds, buckets = _buckets(cumulative.get(version))
            releases[version] = ReleaseTraffic(sum(counts) + lost, tuple(counts), lost, bounds, buckets)  # type: ignore[arg-type]
        return TrafficSample(releases, "prometheus")

    def _query(self, query: str) -> list[tuple[Mapping[str, str], int]]:
        where = f"{self.source.url.rstrip('/')}/api/v1/query"
        try:
            response = self._session.get(where, params={"query": query}, timeout=self._timeout)
            doc: Any = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise DeployError(
                f"Prometheus at {self.source.url} did not answer {query!r}: {exc}", operation="analysis"
            ) from exc
        if response.status_code != 200 or doc.get("status") != "success":
            error = doc.get("error") if isinstance(doc, dict) else None
            raise DeployError(
                f"Prometheus at {self.source.url} refused {query!r} (HTTP {response.status_code}): {error or doc}",
                operation="analysis",
            )
        data = doc["data"]
        if data.get("resultType") != "vector":
            raise DeployError(
                f"Prometheus answered {query!r} with a {data.get('resultType')}, not a vector", operation="analysis"
            )
        return [(item["metric"], round(float(item["value"][1]))) for item in data["result"]]


def _buckets(cumulative: Mapping[float, int] | None) -> tuple[tuple[float, ...], tuple[int, ...] | None]:
    """Prometheus's cumulative `le` buckets as bounds and per-bucket counts (the last one +Inf)."""
    if not cumulative or math.inf not in cumulative:
        return (), None
    bounds = tuple(sorted(b for b in cumulative if math.isfinite(b)))
    running = [cumulative[b] for b in bounds] + [cumulative[math.inf]]
    counts = [max(0, c - p) for p, c in zip([0, *running[:-1]], running, strict=True)]
    return bounds, tuple(counts)
