"""Fixtures for the Kubernetes adapter: the API emulator (tests/peers/k8s_emulator.py) with the app
`shop` (Deployment + Service, release v1 on 4 replicas) in namespace `prod`, adapters driven by the
real `kubernetes` client through a kubeconfig naming the emulator, and the real release checks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from orchestrator.contract import (
    AgentbenchConfig,
    Artifacts,
    CanaryStep,
    Credentials,
    DeployConfig,
    DeploymentConfig,
    HealthCheckConfig,
    RollbackConfig,
    VerificationConfig,
)
from orchestrator.platforms.kubernetes.adapter import KubernetesPlatform
from orchestrator.platforms.kubernetes.api import KubeApi, RetryPolicy
from orchestrator.platforms.kubernetes.cluster import Cluster, Timing
from orchestrator.platforms.kubernetes.kubeconfig import load_api_client
from orchestrator.platforms.kubernetes.manifest import RunInfo
from orchestrator.platforms.kubernetes.proxy import ServiceProxy
from orchestrator.platforms.kubernetes.rollout import Backoff
from tests.peers.k8s_emulator import K8sEmulator

NAMESPACE = "prod"
APP = "shop"
KUBECONFIG_VAR = "KUBECONFIG_CONTENT"
HEALTH = HealthCheckConfig(endpoint="/health", expected_status=200, timeout_seconds=2, retries=2, interval_seconds=0.05)
FAST_POLL = Backoff(initial=0.02, factor=1.5, maximum=0.1)
FAST_RETRY = RetryPolicy(initial_wait=0.01, max_wait=0.05, connect_timeout=2.0, read_timeout=5.0)
RUN = RunInfo(run="4242", repository="acme/shop", workflow="deploy", commit="abc123", run_uri="https://x/4242")

MakePlatform = Callable[..., KubernetesPlatform]


@pytest.fixture
def emu() -> Iterator[K8sEmulator]:
    """The emulator with `shop` v1 live; every exchange must match the Kubernetes OpenAPI description."""
    emulator = K8sEmulator()
    emulator.seed_app(APP, namespace=NAMESPACE, version="v1", replicas=4)
    yield emulator
    emulator.close()
    assert emulator.violations == [], "\n".join(emulator.violations)


@pytest.fixture
def make_platform(emu: K8sEmulator) -> Iterator[MakePlatform]:
    proxies: list[ServiceProxy] = []

    def make(
        *,
        token: str | None = None,
        deadline: int = 5,
        retry: RetryPolicy = FAST_RETRY,
    ) -> KubernetesPlatform:
        client = load_api_client({KUBECONFIG_VAR: emu.kubeconfig(token)}, KUBECONFIG_VAR)
        api = KubeApi(client, NAMESPACE, credential=f"${KUBECONFIG_VAR}", policy=retry)
        proxy = ServiceProxy(client, NAMESPACE, timeout_seconds=5)
        proxies.append(proxy)
        timing = Timing(progress_deadline_seconds=deadline, grace_seconds=2.0, poll=FAST_POLL)
        return KubernetesPlatform(Cluster(api, proxy, app=APP, run=RUN, timing=timing))

    yield make
    for proxy in proxies:
        proxy.close()


def deploy_config(strategy: str = "blue_green", steps: tuple[CanaryStep, ...] = (CanaryStep(100),)) -> DeployConfig:
    return DeployConfig(
        deployment=DeploymentConfig(
            strategy=strategy,  # type: ignore[arg-type]
            platform="kubernetes",
            k8s_namespace=NAMESPACE,
            k8s_deployment=APP,
            canary_steps=steps,
        ),
        artifacts=Artifacts(odoo_modules=(), migrations=()),
        health_check=HEALTH,
        rollback=RollbackConfig(
            auto_rollback_on_failure=True, keep_previous_versions=2, max_rollback_duration_seconds=60
        ),
        agentbench=AgentbenchConfig(
            url="http://127.0.0.1:9", token_env_var="AGENTBENCH_TOKEN", emit_dpo_on_failure=False
        ),
        credentials=Credentials(
            do_api_token_env_var="DO_TOKEN", db_connection_env_var="DATABASE_URL", k8s_kubeconfig_env_var=KUBECONFIG_VAR
        ),
        verification=VerificationConfig(deadline_seconds=5, retries=2, interval_seconds=0.05),
    )


def versions_seen(base_url: str, requests_count: int = 12) -> Counter[str]:
    """Which releases answer `GET /version` through `base_url` (a service-proxy URL), request by request."""
    seen: Counter[str] = Counter()
    for _ in range(requests_count):
        answer = requests.get(base_url.rstrip("/") + "/version", timeout=5)
        seen[answer.json()["version"] if answer.status_code == 200 else f"HTTP {answer.status_code}"] += 1
    return seen


def selector_version(emu: K8sEmulator, service: str = APP) -> str | None:
    doc: dict[str, Any] = emu.get("services", NAMESPACE, service) or {}
    return (doc.get("spec") or {}).get("selector", {}).get("deploy-orchestrator/version")


def replicas(emu: K8sEmulator, name: str) -> int | None:
    doc = emu.get("deployments", NAMESPACE, name)
    return None if doc is None else int(doc["spec"]["replicas"])
