"""The `kubernetes` platform as the registry sees it. Imports no SDK: the client comes with the adapter.

No previews: a per-PR Deployment beside production would need its own Service and a route users can
reach, which the conventions in `manifest.py` do not give; preview modes on this platform are a
config error naming the platforms that have them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.contract import DeployConfig, DeploymentConfig
from orchestrator.platforms.base import Retirement, TrafficRouter
from orchestrator.platforms.registry import PlatformContext, PlatformDescriptor, Target

if TYPE_CHECKING:
    from orchestrator.platforms.kubernetes.adapter import KubernetesPlatform

__all__ = ["DESCRIPTOR"]

_REQUIRED = (("k8s_namespace", "add the namespace"), ("k8s_deployment", "add the Deployment name"))


def _problems(document: Mapping[str, Any], workspace: Path) -> Iterable[str]:
    for field, fix in _REQUIRED:
        if field not in document["deployment_config"]:
            yield f"deployment_config.{field}: required when platform is kubernetes; {fix}"


def _lock_key(deployment: DeploymentConfig) -> str:
    return f"kubernetes/{deployment.k8s_namespace}/{deployment.k8s_deployment}"


def _create(config: DeployConfig, context: PlatformContext, target: Target) -> KubernetesPlatform:
    """The adapter over a connected cluster. Raises ConfigError (no usable kubeconfig)."""
    from orchestrator.platforms.kubernetes.adapter import KubernetesPlatform
    from orchestrator.platforms.kubernetes.api import KubeApi
    from orchestrator.platforms.kubernetes.cluster import Cluster, Timing
    from orchestrator.platforms.kubernetes.kubeconfig import load_api_client
    from orchestrator.platforms.kubernetes.manifest import RunInfo
    from orchestrator.platforms.kubernetes.proxy import ServiceProxy

    assert not target.is_preview, "kubernetes declares no Previews"
    d = config.deployment
    namespace, app = str(d.k8s_namespace), str(d.k8s_deployment)
    var = config.credentials.k8s_kubeconfig_env_var
    client = load_api_client(context.env, var, context=d.k8s_context)
    api = KubeApi(client, namespace, credential=f"${var}" if var and context.env.get(var) else "the service account")
    deadline = d.k8s_progress_deadline_seconds
    cluster = Cluster(
        api,
        ServiceProxy(client, namespace),
        app=app,
        container=d.k8s_container,
        run=RunInfo.from_env(context.env),
        timing=Timing(progress_deadline_seconds=int(deadline)) if deadline else Timing(),
        public_url=d.k8s_public_url,
    )
    return KubernetesPlatform(cluster)


DESCRIPTOR = PlatformDescriptor(
    name="kubernetes",
    capabilities=frozenset({TrafficRouter, Retirement}),
    create=_create,
    config_problems=_problems,
    lock_key=_lock_key,
)
