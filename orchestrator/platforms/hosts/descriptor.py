"""The `hosts` platform as the registry sees it: config checks, settings, lock key, capabilities, factory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.contract import DeployConfig, DeploymentConfig
from orchestrator.errors import ConfigError
from orchestrator.platforms.base import PinsArtifacts, Retirement, TrafficRouter
from orchestrator.platforms.hosts.droplets import droplet_problems
from orchestrator.platforms.hosts.settings import HostsConfig, hosts_settings
from orchestrator.platforms.local.release_paths import release_path_problems
from orchestrator.platforms.registry import PlatformContext, PlatformDescriptor, Target

if TYPE_CHECKING:
    from orchestrator.platforms.hosts.droplet_groups import DropletGroups
    from orchestrator.platforms.hosts.platform import HostsPlatform

__all__ = ["DESCRIPTOR"]

# What the supervisor on each host keeps for itself, beside its releases' files.
_HOST_ONLY = ("state_dir",)


def _problems(document: Mapping[str, Any], workspace: Path) -> Iterable[str]:
    deployment = document["deployment_config"]
    hosts, local = deployment.get("hosts"), deployment.get("local")
    if hosts is None:
        yield (
            "deployment_config.hosts: required when platform is hosts; add hosts: {hosts: [{address: ...}], "
            "public_url: 'https://...'}"
        )
    if local is None:
        yield (
            "deployment_config.local: required when platform is hosts (what each host runs); add local: "
            "{command: [...], listen: '0.0.0.0:8080'}"
        )
    if hosts is None or local is None:
        return
    if not document["credentials"].get("ssh_private_key_env_var"):
        yield (
            "credentials.ssh_private_key_env_var: required when platform is hosts; name the variable holding "
            "the SSH private key (a secret)"
        )
    for key in _HOST_ONLY:
        if key in local:
            yield (
                f"deployment_config.local.{key}: not used on platform hosts (each host keeps its state under "
                "hosts.hosts[].root); remove it"
            )
    yield from release_path_problems(local, workspace, runs_from="uploaded", keys=("cwd", "source"))
    yield from droplet_problems(hosts, deployment["strategy"])
    seen: set[tuple[str, int]] = set()
    for i, host in enumerate(hosts.get("hosts", ())):
        where = (host["address"], host.get("port", 22))
        if where in seen:
            yield f"deployment_config.hosts.hosts[{i}]: {where[0]}:{where[1]} is listed twice; list each host once"
        seen.add(where)
    yield from _label_problems(hosts)
    listen_host = str(local.get("listen", "127.0.0.1:8080")).rsplit(":", 1)[0]
    if listen_host in ("127.0.0.1", "localhost", "::1", "[::1]"):
        yield (
            f"deployment_config.local.listen: {local.get('listen', '127.0.0.1:8080')!r} is the hosts' loopback, "
            "which the load balancer in front cannot reach; listen on 0.0.0.0:<port> or the host's private address"
        )


def _label_problems(hosts: Mapping[str, Any]) -> Iterable[str]:
    group_by = hosts.get("group_by")
    if group_by is not None and hosts.get("max_parallel", 1) != 1:
        yield (
            "deployment_config.hosts.max_parallel: with group_by, a whole group moves at a time; remove "
            "max_parallel or group_by"
        )
    if "hosts" not in hosts:
        return  # Droplets: their labels (`droplet: <name>`) are known once they are found
    labels = [host.get("labels") or {} for host in hosts["hosts"]]
    wanted = hosts.get("canary_labels")
    if wanted and not any(all(have.get(k) == v for k, v in wanted.items()) for have in labels):
        told = ", ".join(f"{k}={v}" for k, v in sorted(wanted.items()))
        yield (
            f"deployment_config.hosts.canary_labels: no host carries {told}; add those labels to the canary "
            "hosts (hosts[].labels) or remove canary_labels"
        )
    if group_by is not None and not any(group_by in have for have in labels):
        yield (
            f"deployment_config.hosts.group_by: no host has the label {group_by!r}; label the hosts "
            f"(hosts[].labels.{group_by}) or remove group_by"
        )


def _lock_key(deployment: DeploymentConfig) -> str:
    hosts = deployment.settings
    if isinstance(hosts, HostsConfig) and hosts.droplets is not None:
        found = hosts.droplets
        tags = [found.tag] if found.tag else [found.blue_tag, found.green_tag]
        return "hosts/droplets:" + ",".join(t for t in tags if t)
    members = sorted(f"{h.user}@{h.address}:{h.port}" for h in hosts.hosts) if isinstance(hosts, HostsConfig) else []
    return "hosts/" + ",".join(members)


def _create(config: DeployConfig, context: PlatformContext, target: Target) -> HostsPlatform | DropletGroups:
    from orchestrator.platforms.hosts.factory import create_hosts

    if target.is_preview:
        raise ConfigError("mode: platform hosts has no pull-request previews; run preview modes on platform local")
    return create_hosts(config, Path(context.workspace), context.env)


DESCRIPTOR = PlatformDescriptor(
    name="hosts",
    capabilities=frozenset({TrafficRouter, Retirement, PinsArtifacts}),
    create=_create,
    config_problems=_problems,
    lock_key=_lock_key,
    settings=hosts_settings,
)
