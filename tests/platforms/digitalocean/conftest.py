"""Fixtures for the DigitalOcean adapter: the App Platform simulator and adapters pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestrator.contract import DeploymentConfig, HealthCheckConfig
from orchestrator.platforms.digitalocean.adapter import DigitalOceanPlatform
from orchestrator.platforms.digitalocean.api import RetryPolicy
from orchestrator.platforms.digitalocean.preview_target import DigitalOceanPreview
from orchestrator.platforms.digitalocean.watch import Backoff
from orchestrator.redaction import Secret
from tests.peers.do_simulator import DoSimulator

HEALTH = HealthCheckConfig(endpoint="/health", expected_status=200, timeout_seconds=5, retries=3, interval_seconds=2)
FAST_POLL = Backoff(initial=0.02, factor=1.5, maximum=0.1)
FAST_RETRY = RetryPolicy(initial_wait=0.01, max_wait=0.05, read_timeout=2.0, connect_timeout=2.0)

MakePlatform = Callable[..., DigitalOceanPlatform]
MakePreview = Callable[..., DigitalOceanPreview]


@pytest.fixture
def do_sim() -> Iterator[DoSimulator]:
    """A fresh simulator; every exchange must match DigitalOcean's OpenAPI description."""
    sim = DoSimulator()
    yield sim
    sim.close()
    assert sim.violations == [], "\n".join(sim.violations)


@pytest.fixture
def do_app(do_sim: DoSimulator) -> str:
    """An app whose release v1 is live."""
    return do_sim.seed_app("shop", version="v1")


@pytest.fixture
def make_platform(do_sim: DoSimulator, do_app: str) -> MakePlatform:
    def make(
        *,
        token: str | None = None,
        app_id: str | None = None,
        component: str | None = None,
        deadline: float = 10.0,
        retry: RetryPolicy = FAST_RETRY,
        **kwargs: Any,
    ) -> DigitalOceanPlatform:
        deployment = DeploymentConfig(
            strategy="blue_green", platform="digitalocean", do_app_id=app_id or do_app, do_component=component
        )
        return DigitalOceanPlatform(
            deployment,
            HEALTH,
            Secret(token or do_sim.token, name="DIGITALOCEAN_TOKEN"),
            endpoint=do_sim.url,
            verify=do_sim.ca_bundle,
            deadline_seconds=deadline,
            backoff=FAST_POLL,
            retry=retry,
            **kwargs,
        )

    return make


@pytest.fixture
def make_preview(make_platform: MakePlatform) -> MakePreview:
    """A pull request's preview target beside the production app `make_platform` builds."""

    def make(pr_number: int, repository: str, **kwargs: Any) -> DigitalOceanPreview:
        return DigitalOceanPreview(make_platform(**kwargs), pr_number, repository)

    return make
