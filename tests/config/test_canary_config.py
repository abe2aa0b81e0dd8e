"""`deployment_config.canary.analysis`, `.sticky` and `.webhooks`: parsed into typed policy, every
mistake named by its field (exit 2 through the CLI, nothing touched)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.config import parse_config
from orchestrator.contract.canary import AnalysisPolicy, Stickiness, Webhook
from orchestrator.errors import ConfigError
from tests.workspace import base_config


def canary_config(**canary: Any) -> dict[str, Any]:
    config = base_config()
    config["deployment_config"]["strategy"] = "canary"
    config["deployment_config"]["canary"] = {"steps": [{"weight": 10}, {"weight": 50}], **canary}
    return config


def problems_of(config: dict[str, Any], workspace: Path) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config, workspace)
    return caught.value.problems


def test_the_analysis_sticky_sessions_and_webhooks_parse_into_policy(tmp_path: Path) -> None:
    config = canary_config(
        analysis={"min_requests": 50, "max_p95_increase_pct": 30, "on_inconclusive": "pass"},
        sticky={"header": "X-User"},
        webhooks=[{"name": "gate", "url": "http://127.0.0.1:9/h", "phases": ["confirm-promotion"], "secret_env": "K"}],
    )
    d = parse_config(config, tmp_path).deployment
    assert d.canary_analysis == AnalysisPolicy(min_requests=50, max_p95_increase_pct=30, on_inconclusive="pass")
    assert d.canary_sticky == Stickiness(cookie=None, header="X-User")
    assert d.canary_webhooks == (Webhook("gate", "http://127.0.0.1:9/h", ("confirm-promotion",), secret_env="K"),)


def test_sticky_defaults_to_a_cookie(tmp_path: Path) -> None:
    d = parse_config(canary_config(sticky={}), tmp_path).deployment
    assert d.canary_sticky == Stickiness(cookie="deploy-orchestrator-release", header=None)


def test_bad_analysis_values_name_their_fields(tmp_path: Path) -> None:
    config = canary_config(analysis={"min_requests": 0, "error_test": "chi", "alpha": 0.9, "p95": 1})
    problems = problems_of(config, tmp_path)
    assert problems[0].startswith("deployment_config.canary.analysis.p95: unknown field; remove it (allowed: alpha,")
    assert problems[1:] == (
        "deployment_config.canary.analysis.alpha: 0.9 is out of range; should be greater than 0 to 0.5",
        "deployment_config.canary.analysis.error_test: 'chi' is not allowed; use one of fisher, two_proportion",
        "deployment_config.canary.analysis.min_requests: 0 is out of range; should be from 1 to 10000000",
    )


def test_canary_options_on_another_strategy_are_refused(tmp_path: Path) -> None:
    config = canary_config(analysis={})
    config["deployment_config"]["strategy"] = "blue_green"
    assert problems_of(config, tmp_path) == (
        "deployment_config.canary.analysis: only a canary uses it; set strategy: canary, or remove analysis",
    )


def test_sticky_sessions_need_our_proxy(tmp_path: Path) -> None:
    config = canary_config(sticky={"cookie": "c", "header": "h"})
    config["deployment_config"]["local"]["proxy"] = "haproxy"
    assert problems_of(config, tmp_path) == (
        "deployment_config.canary.sticky: set either cookie or header, not both",
        "deployment_config.canary.sticky: sticky sessions need local.proxy: python (haproxy is driven by weights only)",
    )


def test_kubernetes_analysis_needs_prometheus_and_local_refuses_it(tmp_path: Path) -> None:
    config = canary_config(analysis={}, sticky={})
    config["deployment_config"] = {
        **config["deployment_config"],
        "platform": "kubernetes",
        "k8s_namespace": "ns",
        "k8s_deployment": "app",
    }
    assert problems_of(config, tmp_path) == (
        "deployment_config.canary.analysis.prometheus_url: required on kubernetes; name the Prometheus server "
        "that scrapes the request metrics (the analysis compares canary and baseline on them)",
        "deployment_config.canary.sticky: sticky sessions need the local data plane (platform local); kubernetes "
        "splits traffic by replicas and cannot pin a client",
    )
    local = canary_config(analysis={"prometheus_url": "http://127.0.0.1:9090"})
    assert problems_of(local, tmp_path) == (
        "deployment_config.canary.analysis.prometheus_url: only kubernetes reads Prometheus; local measures at "
        "its own proxy",
    )


def test_a_canary_on_digitalocean_is_refused_for_want_of_a_traffic_router(tmp_path: Path) -> None:
    config = canary_config(analysis={})
    config["deployment_config"] = {
        "strategy": "canary",
        "platform": "digitalocean",
        "do_app_id": "app-1",
        "canary": config["deployment_config"]["canary"],
    }
    assert problems_of(config, tmp_path) == (
        "deployment_config.strategy: canary is not possible on digitalocean; use blue_green, rolling there, "
        "or platform local, kubernetes, hosts for canary",
    )


def test_webhook_mistakes_name_their_fields(tmp_path: Path) -> None:
    hook = {"name": "a", "url": "http://127.0.0.1:9/", "phases": ["rollout"]}
    malformed = canary_config(webhooks=[{"name": "b", "url": "ftp://x", "phases": ["deploy"]}])
    assert problems_of(malformed, tmp_path) == (
        "deployment_config.canary.webhooks[0].phases[0]: 'deploy' is not allowed; use one of confirm-rollout, "
        "pre-rollout, rollout, confirm-promotion, post-rollout, rollback",
        "deployment_config.canary.webhooks[0].url: 'ftp://x' should be an http:// or https:// URL",
    )
    config = canary_config(webhooks=[hook, {**hook, "on_reject": "hold", "gating": False}])
    problems = problems_of(config, tmp_path)
    assert "deployment_config.canary.webhooks[1].name: 'a' is used twice; give each webhook its own name" in problems
    assert (
        "deployment_config.canary.webhooks[1].on_reject: hold needs gating: true (a hook that is only told cannot hold)"
        in problems
    )


def test_the_readme_canary_example_is_a_valid_config(tmp_path: Path) -> None:
    import re

    import yaml

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Canary analysis, sticky sessions and phase webhooks") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None, "the README's canary section shows its config"
    example = yaml.safe_load(block.group(1))["deployment_config"]
    config = base_config()
    config["deployment_config"].update(example)
    d = parse_config(config, tmp_path).deployment
    assert d.canary_analysis is not None and d.canary_sticky is not None and len(d.canary_webhooks) == 1
