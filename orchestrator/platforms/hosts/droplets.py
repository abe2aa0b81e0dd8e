"""`hosts.droplets`: the hosts found on DigitalOcean by Droplet tag, and how traffic switches between them.

Two shapes, told apart by their keys:
- `tag`: every Droplet with the tag is a host, exactly as if listed in `hosts.hosts` (each host's
  proxy switches; every strategy works);
- `blue_tag` + `green_tag` with `load_balancer_id` or `reserved_ip`: two groups of Droplets, one
  behind the load balancer (or holding the reserved IP) and one idle. A release starts on the idle
  group, is checked there, then the load balancer's Droplets (or the reserved IP) move to it; the
  other group keeps the previous release running for an instant rollback. Blue/green only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["GROUPS", "DropletsConfig", "droplet_problems", "droplets_settings"]

GROUPS = ("blue", "green")
_WHERE = "deployment_config.hosts.droplets"


@dataclass(frozen=True, slots=True)
class DropletsConfig:
    tag: str | None = None
    blue_tag: str | None = None
    green_tag: str | None = None
    load_balancer_id: str | None = None
    reserved_ip: str | None = None
    address: Literal["public", "private"] = "public"
    """The Droplet's IPv4 address the orchestrator signs in to."""
    port: int = 22
    user: str = "root"
    root: str = "~/.deploy-orchestrator"
    switch_timeout_seconds: float = 60.0
    settle_seconds: float | None = None
    """Between adding the new group and removing the old; None: the load balancer's health check time."""

    @property
    def switched(self) -> bool:
        """Blue/green between two groups, switched at the load balancer or the reserved IP."""
        return self.blue_tag is not None

    def group_tags(self) -> dict[str, str]:
        """Group name -> its tag (blue, green); empty when the Droplets are one set found by `tag`."""
        if self.blue_tag is None or self.green_tag is None:
            return {}
        return {"blue": self.blue_tag, "green": self.green_tag}

    @property
    def via(self) -> Literal["load_balancer", "reserved_ip"]:
        return "reserved_ip" if self.reserved_ip is not None else "load_balancer"

    @property
    def switch_target(self) -> str:
        """The load balancer's id or the reserved IP."""
        target = self.reserved_ip or self.load_balancer_id
        assert target is not None, "checked by droplet_problems"
        return target


def droplets_settings(raw: Mapping[str, Any] | None) -> DropletsConfig | None:
    """The schema-valid `hosts.droplets` block typed (None when absent)."""
    if raw is None:
        return None
    return DropletsConfig(
        tag=raw.get("tag"),
        blue_tag=raw.get("blue_tag"),
        green_tag=raw.get("green_tag"),
        load_balancer_id=raw.get("load_balancer_id"),
        reserved_ip=raw.get("reserved_ip"),
        address=raw.get("address", "public"),
        port=int(raw.get("port", 22)),
        user=raw.get("user", "root"),
        root=raw.get("root", "~/.deploy-orchestrator"),
        switch_timeout_seconds=float(raw.get("switch_timeout_seconds", 60)),
        settle_seconds=float(raw["settle_seconds"]) if "settle_seconds" in raw else None,
    )


def droplet_problems(hosts: Mapping[str, Any], strategy: str) -> Iterable[str]:
    """What the schema cannot say about `hosts.hosts` / `hosts.droplets` (one problem per line, naming the field)."""
    droplets = hosts.get("droplets")
    if "hosts" in hosts and droplets is not None:
        yield (
            f"{_WHERE}: give either deployment_config.hosts.hosts (listed) or hosts.droplets (found by tag), not both"
        )
        return
    if "hosts" not in hosts and droplets is None:
        yield (
            "deployment_config.hosts.hosts: required unless hosts.droplets finds them; list the hosts "
            "([{address: ...}]) or add droplets: {tag: ...}"
        )
        return
    if droplets is None:
        return
    grouped = [key for key in ("blue_tag", "green_tag") if key in droplets]
    switches = [key for key in ("load_balancer_id", "reserved_ip") if key in droplets]
    if "tag" in droplets:
        for key in [*grouped, *switches]:
            yield (
                f"{_WHERE}.{key}: not used with droplets.tag (one set of hosts, each switching its own proxy); "
                "for blue/green between two Droplet groups give blue_tag, green_tag and load_balancer_id or "
                "reserved_ip instead of tag"
            )
        return
    if not grouped:
        yield (
            f"{_WHERE}.tag: required (the Droplets to deploy to); or blue_tag and green_tag with load_balancer_id "
            "or reserved_ip for blue/green between two Droplet groups"
        )
        return
    for key in ("blue_tag", "green_tag"):
        if key not in droplets:
            yield f"{_WHERE}.{key}: required with {grouped[0]} (the other Droplet group); add it"
    if len(grouped) == 2 and droplets["blue_tag"] == droplets["green_tag"]:
        yield f"{_WHERE}.green_tag: {droplets['green_tag']!r} is blue_tag too; the two groups need different tags"
    if len(switches) != 1:
        yield (
            f"{_WHERE}.{'reserved_ip' if switches else 'load_balancer_id'}: "
            + (
                "give load_balancer_id or reserved_ip, not both (what moves between the groups)"
                if switches
                else "required with blue_tag/green_tag: the load balancer (or reserved_ip) that moves to the new group"
            )
        )
    if strategy != "blue_green":
        yield (
            f"deployment_config.strategy: {strategy!r} cannot run on two Droplet groups switched as a whole; use "
            "blue_green, or hosts.droplets.tag (every host switches its own proxy) for rolling or canary"
        )
