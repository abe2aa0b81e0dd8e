"""Droplets to hosts: the Droplets carrying a tag, each one a host at its public or private IPv4 address."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import DeployError
from orchestrator.platforms.hosts.droplet_api import DropletApi
from orchestrator.platforms.hosts.droplets import DropletsConfig
from orchestrator.platforms.hosts.settings import HostConfig

__all__ = ["DropletHosts", "discover", "hosts_of"]


@dataclass(frozen=True, slots=True)
class DropletHosts:
    """One tag's Droplets: their ids (what a load balancer holds) and the hosts they are (same order)."""

    tag: str
    ids: tuple[int, ...]
    hosts: tuple[HostConfig, ...]


def discover(api: DropletApi, config: DropletsConfig) -> dict[str, DropletHosts]:
    """Every tag's Droplets, by group (`blue`, `green`) or under `all` for `droplets.tag`.

    Raises DeployError when a tag has no Droplet, or a Droplet carries both group tags (it cannot
    be on both sides of the switch)."""
    tags = config.group_tags() or {"all": str(config.tag)}
    found = {group: hosts_of(tag, api.droplets(tag), config) for group, tag in tags.items()}
    for group, hosts in found.items():
        if not hosts.ids:
            raise DeployError(
                f"hosts.droplets: no Droplet carries the tag {hosts.tag!r} ({group}); tag the Droplets to deploy "
                f"to (doctl compute droplet tag <id> --tag-name {hosts.tag})",
                platform="hosts",
                operation="discover",
            )
    if len(found) == 2:
        shared = set(found["blue"].ids) & set(found["green"].ids)
        if shared:
            raise DeployError(
                f"hosts.droplets: Droplets {sorted(shared)} carry both {config.blue_tag!r} and {config.green_tag!r}; "
                "a Droplet belongs to one group: remove one of the tags",
                platform="hosts",
                operation="discover",
            )
    return found


def hosts_of(tag: str, droplets: Sequence[Mapping[str, Any]], config: DropletsConfig) -> DropletHosts:
    """The hosts `droplets` (as the API lists them) are. Raises DeployError for a Droplet without that address."""
    ids: list[int] = []
    hosts: list[HostConfig] = []
    for droplet in sorted(droplets, key=lambda d: int(d["id"])):
        networks = (droplet.get("networks") or {}).get("v4") or []
        address = next((n["ip_address"] for n in networks if n.get("type") == config.address), None)
        if address is None:
            raise DeployError(
                f"hosts.droplets: Droplet {droplet.get('name')} ({droplet['id']}) has no {config.address} IPv4 "
                f"address; set hosts.droplets.address to "
                f"{'private' if config.address == 'public' else 'public'}, or give it one",
                platform="hosts",
                operation="discover",
            )
        ids.append(int(droplet["id"]))
        hosts.append(
            HostConfig(
                address=address,
                port=config.port,
                user=config.user,
                labels=(("droplet", str(droplet.get("name", droplet["id"]))),),
                root=config.root.replace("{name}", str(droplet.get("name", droplet["id"]))),
            )
        )
    return DropletHosts(tag, tuple(ids), tuple(hosts))
