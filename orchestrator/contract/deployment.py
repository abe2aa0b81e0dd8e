"""Where and how a release goes out: the platform, the strategy and their settings (input contract)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.contract.canary import AnalysisPolicy, PrometheusSource, Stickiness, Webhook

__all__ = [
    "STRATEGIES",
    "CanaryStep",
    "DeploymentConfig",
    "LocalConfig",
    "PlatformName",
    "RollingConfig",
    "Strategy",
]

Strategy = Literal["blue_green", "canary", "rolling"]
PlatformName = str
"""A platform the registry has (`orchestrator.platforms.registry`): the seed's local, digitalocean and
kubernetes, and any platform package added since."""

STRATEGIES: tuple[str, ...] = ("blue_green", "canary", "rolling")


@dataclass(frozen=True, slots=True)
class LocalConfig:
    command: tuple[str, ...]
    listen: str = "127.0.0.1:8080"
    state_dir: Path = Path(".deploy-orchestrator/local")
    cwd: Path | None = None
    source: Path | None = None
    """The release's files (default: the workspace); captured into the state dir at deploy."""
    env: tuple[tuple[str, str], ...] = ()
    replicas: int = 1
    drain_seconds: float = 10.0
    startup_timeout_seconds: float = 30.0
    proxy: str = "python"
    """The data plane on `listen`: "python" (ours) or "haproxy" (driven through its runtime API)."""
    max_connections: int = 10_000


@dataclass(frozen=True, slots=True)
class CanaryStep:
    weight: int
    pause_seconds: float = 0.0
    analysis: bool = True


@dataclass(frozen=True, slots=True)
class RollingConfig:
    max_unavailable: int = 0
    pause_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    strategy: Strategy
    platform: PlatformName
    do_app_id: str | None = None
    do_region: str | None = None
    do_component: str | None = None
    do_deploy_timeout_seconds: float | None = None
    do_project_id: str | None = None
    do_print_build_logs: bool = False
    do_print_deploy_logs: bool = False
    k8s_namespace: str | None = None
    k8s_deployment: str | None = None
    k8s_progress_deadline_seconds: int | None = None
    k8s_public_url: str | None = None
    k8s_container: str | None = None
    k8s_context: str | None = None
    local: LocalConfig | None = None
    canary_steps: tuple[CanaryStep, ...] = (CanaryStep(weight=100),)
    canary_analysis: AnalysisPolicy | None = None
    canary_prometheus: PrometheusSource | None = None
    """Kubernetes: the Prometheus server the analysis reads its counters from."""
    canary_sticky: Stickiness | None = None
    canary_webhooks: tuple[Webhook, ...] = ()
    rolling: RollingConfig = RollingConfig()
    settings: object | None = None
    """The platform's own block as its descriptor types it (`PlatformDescriptor.settings`). The seed's
    platforms keep their fields flat above, as its contract has them; a platform added since keeps
    its fields here, so adding one never touches this class."""
