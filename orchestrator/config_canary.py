"""`deployment_config.canary` beyond its steps: the analysis, sticky sessions and phase webhooks, parsed
into `contract.canary` types, and the cross-field rules the schema cannot say (each names its field)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.contract.canary import AnalysisPolicy, PrometheusSource, Stickiness, Webhook

__all__ = ["canary_options", "canary_problems"]

_FIELD = "deployment_config.canary"
DEFAULT_COOKIE = "deploy-orchestrator-release"


def canary_options(canary: Mapping[str, Any]) -> dict[str, Any]:
    """The `DeploymentConfig` fields for `canary.analysis`, `canary.sticky`, `canary.webhooks`."""
    analysis = canary.get("analysis")
    sticky = canary.get("sticky")
    return {
        "canary_analysis": (
            AnalysisPolicy(**{k: v for k, v in analysis.items() if k in AnalysisPolicy.__dataclass_fields__})
            if analysis is not None
            else None
        ),
        "canary_prometheus": (
            PrometheusSource(
                analysis["prometheus_url"],
                **{
                    k.removeprefix("prometheus_"): v
                    for k, v in analysis.items()
                    if k.startswith("prometheus_") and k != "prometheus_url"
                },
            )
            if analysis and "prometheus_url" in analysis
            else None
        ),
        "canary_sticky": (
            Stickiness(
                cookie=sticky.get("cookie", None if "header" in sticky else DEFAULT_COOKIE), header=sticky.get("header")
            )
            if sticky is not None
            else None
        ),
        "canary_webhooks": tuple(
            Webhook(**{**hook, "phases": tuple(hook["phases"])}) for hook in canary.get("webhooks", [])
        ),
    }


def canary_problems(deployment: Mapping[str, Any]) -> Iterable[str]:
    canary = deployment.get("canary") or {}
    strategy, platform = deployment["strategy"], deployment["platform"]
    for key in ("analysis", "sticky", "webhooks"):
        if key in canary and strategy != "canary":
            yield f"{_FIELD}.{key}: only a canary uses it; set strategy: canary, or remove {key}"
    analysis = canary.get("analysis")
    if analysis is not None and strategy == "canary":
        if platform == "kubernetes" and "prometheus_url" not in analysis:
            yield (
                f"{_FIELD}.analysis.prometheus_url: required on kubernetes; name the Prometheus server that "
                "scrapes the request metrics (the analysis compares canary and baseline on them)"
            )
        if platform != "kubernetes" and "prometheus_url" in analysis:
            yield f"{_FIELD}.analysis.prometheus_url: only kubernetes reads Prometheus; local measures at its own proxy"
    sticky = canary.get("sticky")
    if sticky is not None and strategy == "canary":
        if "cookie" in sticky and "header" in sticky:
            yield f"{_FIELD}.sticky: set either cookie or header, not both"
        local = deployment.get("local") or {}
        if platform != "local":
            yield (
                f"{_FIELD}.sticky: sticky sessions need the local data plane (platform local); {platform} "
                "splits traffic by replicas and cannot pin a client"
            )
        elif local.get("proxy", "python") != "python":
            yield f"{_FIELD}.sticky: sticky sessions need local.proxy: python (haproxy is driven by weights only)"
    seen: set[str] = set()
    for i, hook in enumerate(canary.get("webhooks", [])):
        if hook["name"] in seen:
            yield f"{_FIELD}.webhooks[{i}].name: {hook['name']!r} is used twice; give each webhook its own name"
        seen.add(hook["name"])
        if hook.get("on_reject") == "hold" and not hook.get("gating", True):
            yield f"{_FIELD}.webhooks[{i}].on_reject: hold needs gating: true (a hook that is only told cannot hold)"
