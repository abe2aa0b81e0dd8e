"""Build a `HostsPlatform` from the parsed config and the run's environment (the descriptor's factory).

The SSH key comes from the variable `credentials.ssh_private_key_env_var` names (registered with
the redaction filter, parsed in memory, never written); the known_hosts lines from
`credentials.ssh_known_hosts_env_var` when set, beside each host's `fingerprint`. Nothing is
connected here: the first platform call signs in to every host.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.contract import DeployConfig, LocalConfig
from orchestrator.errors import ConfigError
from orchestrator.platforms.hosts.connection import HostConnection
from orchestrator.platforms.hosts.fleet import Fleet
from orchestrator.platforms.hosts.platform import HostsPlatform
from orchestrator.platforms.hosts.settings import HostsConfig, settings_of
from orchestrator.platforms.hosts.trust import Pins, load_private_key
from orchestrator.redaction import Secret, register

if TYPE_CHECKING:
    from orchestrator.platforms.hosts.droplet_groups import DropletGroups

__all__ = ["build_platform", "create_hosts", "local_document"]


def create_hosts(config: DeployConfig, workspace: Path, env: Mapping[str, str]) -> HostsPlatform | DropletGroups:
    """Raises ConfigError for a missing or unreadable key, or known_hosts lines that do not parse."""
    hosts = settings_of(config.deployment)
    if hosts.droplets is not None:
        from orchestrator.platforms.hosts.droplet_groups import create_on_droplets

        return create_on_droplets(config, hosts, workspace, env)
    return build_platform(config, hosts, workspace, env)


def build_platform(config: DeployConfig, hosts: HostsConfig, workspace: Path, env: Mapping[str, str]) -> HostsPlatform:
    """The adapter for the hosts `hosts` lists (all of the config's, or one Droplet group's)."""
    local = config.deployment.local
    assert local is not None, "checked by the config (deployment_config.local)"
    key_var = config.credentials.ssh_private_key_env_var
    if not key_var or not env.get(key_var):
        raise ConfigError(
            f"credentials.ssh_private_key_env_var: {key_var or '(unset)'} holds no SSH private key; "
            "set credentials.ssh_private_key_env_var to a variable holding the key (a secret)"
        )
    register(env[key_var])
    key = load_private_key(Secret(env[key_var], key_var), key_var)
    known_var = config.credentials.ssh_known_hosts_env_var
    known_hosts = env.get(known_var, "") if known_var else ""
    fingerprints = {h.name: h.fingerprint for h in hosts.hosts if h.fingerprint}
    pins = Pins(known_hosts, fingerprints, trust_on_first_use=hosts.trust_on_first_use)
    connections = [
        HostConnection(h, key=key, pins=pins, timeout=hosts.connect_timeout_seconds, python=hosts.python)
        for h in hosts.hosts
    ]
    source = (workspace / local.source).resolve() if local.source is not None else workspace.resolve()
    health = config.health_check
    fleet = Fleet(
        connections,
        local_document(local, source, workspace),
        {
            "endpoint": health.endpoint,
            "expected_status": health.expected_status,
            "timeout_seconds": health.timeout_seconds,
            "retries": health.retries,
            "interval_seconds": health.interval_seconds,
        },
        systemd=hosts.systemd,
        container_engine=hosts.container_engine,
    )
    return HostsPlatform(
        hosts,
        fleet,
        source=source,
        workspace=workspace,
        startup=local.startup_timeout_seconds,
        command=local.command,
    )


def local_document(local: LocalConfig, source: Path, workspace: Path) -> dict[str, Any]:
    """What each host's agent needs of `local` (its state dir and source are the host's own)."""
    cwd = None
    if local.cwd is not None:
        cwd = (workspace / local.cwd).resolve().relative_to(source).as_posix()
    return {
        "command": list(local.command),
        "listen": local.listen,
        "cwd": cwd,
        "env": [list(pair) for pair in local.env],
        "replicas": local.replicas,
        "drain_seconds": local.drain_seconds,
        "startup_timeout_seconds": local.startup_timeout_seconds,
        "proxy": local.proxy,
        "max_connections": local.max_connections,
    }
