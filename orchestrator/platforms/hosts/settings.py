"""The `hosts` platform's typed settings: its `deployment_config.hosts` block, as the descriptor builds it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from orchestrator.contract import DeploymentConfig
from orchestrator.platforms.hosts.droplets import DropletsConfig, droplets_settings

__all__ = ["HostConfig", "HostsConfig", "hosts_settings", "settings_of"]


@dataclass(frozen=True, slots=True)
class HostConfig:
    """One server of the `hosts` platform, reached over SSH."""

    address: str
    port: int = 22
    user: str = "root"
    labels: tuple[tuple[str, str], ...] = ()
    root: str = "~/.deploy-orchestrator"
    """Where the orchestrator, the uploads and the local supervisor's state live on the host."""
    fingerprint: str | None = None
    """The host key pinned as `SHA256:...` (instead of, or beside, a known_hosts line)."""

    @property
    def name(self) -> str:
        return self.address if self.port == 22 else f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class HostsConfig:
    """The `hosts` platform: the model of `local` (supervisor + proxy) on every host, over SSH."""

    hosts: tuple[HostConfig, ...]
    public_url: str
    """The route users reach (a load balancer in front of the hosts): where releases are verified."""
    python: str = "python3"
    """The host's Python (>= 3.11) that runs the orchestrator there."""
    trust_on_first_use: bool = False
    """Accept a host key nothing pins (and log it to pin). Off: an unknown key refuses."""
    max_parallel: int = 1
    """Rolling: how many hosts move at once."""
    split: Literal["host", "weight"] = "host"
    """How a share of traffic is made: by moving whole hosts, or by every host's proxy splitting by weight."""
    connect_timeout_seconds: float = 10.0
    droplets: DropletsConfig | None = None
    """Hosts found on DigitalOcean by tag (then `hosts` is empty until the factory discovers them)."""
    systemd: bool = True
    """Where systemd is the host's init, install a unit keeping the supervisor across reboots."""
    canary_labels: tuple[tuple[str, str], ...] = ()
    """The canary hosts: those carrying every one of these labels move first."""
    group_by: str | None = None
    """A label: shares move the hosts sharing its value together (instead of `max_parallel` at a time)."""
    container_engine: str | None = None
    """The hosts' podman or docker for image releases (None: podman, else docker, on the host's PATH)."""
    image_transfer: Literal["pull", "upload"] = "pull"
    """How an image release's image reaches the hosts: pulled there by digest, or saved here and uploaded."""


def hosts_settings(deployment: Mapping[str, Any], _workspace: Path) -> HostsConfig:
    """`PlatformDescriptor.settings`: the raw `deployment_config` (schema-valid, checks passed) typed."""
    h = deployment["hosts"]
    return HostsConfig(
        hosts=tuple(
            HostConfig(
                address=host["address"],
                port=int(host.get("port", 22)),
                user=host.get("user", "root"),
                labels=tuple(sorted((host.get("labels") or {}).items())),
                root=host.get("root", "~/.deploy-orchestrator"),
                fingerprint=host.get("fingerprint"),
            )
            for host in h.get("hosts", ())
        ),
        public_url=h["public_url"],
        python=h.get("python", "python3"),
        trust_on_first_use=bool(h.get("trust_on_first_use", False)),
        max_parallel=int(h.get("max_parallel", 1)),
        split=h.get("split", "host"),
        connect_timeout_seconds=float(h.get("connect_timeout_seconds", 10)),
        droplets=droplets_settings(h.get("droplets")),
        systemd=bool(h.get("systemd", True)),
        canary_labels=tuple(sorted((h.get("canary_labels") or {}).items())),
        group_by=h.get("group_by"),
        container_engine=h.get("container_engine"),
        image_transfer=h.get("image_transfer", "pull"),
    )


def settings_of(deployment: DeploymentConfig) -> HostsConfig:
    """The settings the descriptor built for a hosts deployment."""
    settings = deployment.settings
    assert isinstance(settings, HostsConfig), "built by the hosts descriptor (deployment_config.hosts)"
    return settings
