"""Kubernetes through the official `kubernetes` client (DESIGN.md section 5).

Importing this package registers the `kubernetes` platform factory. Which adapter it builds depends
on the strategy: blue_green and canary run one Deployment per release and move traffic with the
Service selector (`adapter.KubernetesPlatform`); rolling uses the Deployment's native rolling update
(`rolling.KubernetesRollingPlatform`, which cuts over by itself). `manifest.py` states the naming and
labelling conventions the user's Deployment and Service follow.

Optional `deployment_config` fields read when the config grows them (not in the schema yet):
`k8s_progress_deadline_seconds` (default 600), `k8s_public_url` (what `live_url` returns instead of
the service-proxy URL), `k8s_container` (which container's image to replace; default the first),
`k8s_context` (kubeconfig context; default its current-context).
"""

from __future__ import annotations

from orchestrator.contract import DeployConfig
from orchestrator.errors import ConfigError
from orchestrator.platforms.base import Platform, PlatformContext, register

from .adapter import KubernetesPlatform
from .api import KubeApi, RetryPolicy
from .cluster import Cluster, Timing
from .kubeconfig import load_api_client
from .manifest import NAME_LABEL, VERSION_LABEL, RunInfo, replica_split
from .proxy import ServiceProxy
from .rolling import KubernetesRollingPlatform
from .rollout import Backoff

__all__ = [
    "NAME_LABEL",
    "VERSION_LABEL",
    "Backoff",
    "Cluster",
    "KubeApi",
    "KubernetesPlatform",
    "KubernetesRollingPlatform",
    "RetryPolicy",
    "RunInfo",
    "ServiceProxy",
    "Timing",
    "build",
    "factory",
    "load_api_client",
    "replica_split",
]


def factory(cfg: DeployConfig, ctx: PlatformContext) -> Platform:
    """Build the adapter for the configured strategy. Raises ConfigError (missing fields or kubeconfig)."""
    d = cfg.deployment
    problems = [
        f"deployment_config.{field}: required when platform is kubernetes; {fix}"
        for field, value, fix in (
            ("k8s_namespace", d.k8s_namespace, "add the namespace"),
            ("k8s_deployment", d.k8s_deployment, "add the Deployment name"),
        )
        if not value
    ]
    if problems:
        raise ConfigError(problems)
    var = cfg.credentials.k8s_kubeconfig_env_var
    client = load_api_client(ctx.env, var, context=d.k8s_context)
    api = KubeApi(
        client, str(d.k8s_namespace), credential=f"${var}" if var and ctx.env.get(var) else "the service account"
    )
    deadline = d.k8s_progress_deadline_seconds
    cluster = Cluster(
        api,
        ServiceProxy(client, str(d.k8s_namespace)),
        app=str(d.k8s_deployment),
        container=d.k8s_container,
        run=RunInfo.from_env(ctx.env),
        timing=Timing(progress_deadline_seconds=int(deadline)) if deadline else Timing(),
        public_url=d.k8s_public_url,
    )
    return build(cluster, d.strategy)


def build(cluster: Cluster, strategy: str) -> Platform:
    """The adapter for `strategy` over an already connected cluster."""
    if strategy == "rolling":
        return KubernetesRollingPlatform(cluster)
    return KubernetesPlatform(cluster, strategy=strategy)


register("kubernetes", factory)
