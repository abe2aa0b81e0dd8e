"""The switch between two Droplet groups at the infrastructure level, decided as data, then done.

`plan_switch` is pure: from the Droplets behind the load balancer (or holding the reserved IP) now
and the groups' Droplets, it says exactly which calls the switch makes. `apply` makes them:

- load balancer: the new group's Droplets are added first, then (once the load balancer's health
  check can have passed them: `settle_seconds`) the other group's removed, so users always reach a
  healthy Droplet (for a moment both groups serve, both checked). Droplets of neither
  group stay where they are. A failure (or a crash: crash point `mid-switch`) between the two calls
  leaves both groups behind it: the caller's undo, or the next run from the switch record, puts
  the recorded group back alone;
- reserved IP: one assign action to the new group's Droplet (atomic at DigitalOcean).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from orchestrator.platforms.hosts.droplet_api import DropletApi
from orchestrator.recovery import crash_points

__all__ = ["SwitchPlan", "Via", "apply", "group_of", "members_now", "plan_switch"]

Via = Literal["load_balancer", "reserved_ip"]


@dataclass(frozen=True, slots=True)
class SwitchPlan:
    via: Via
    target: str
    """The load balancer's id or the reserved IP."""
    to_group: str
    from_group: str | None
    """The group behind it now (None: neither; `mixed`: both, a switch was interrupted)."""
    add: tuple[int, ...]
    remove: tuple[int, ...]
    removed_from: tuple[str, ...] = ()
    """The groups whose Droplets `remove` takes out."""
    settle_seconds: float = 0.0
    """The wait after adding (before removing): the load balancer's health check passing the new Droplets."""

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove

    def describe(self) -> str:
        if self.empty:
            return f"{self.subject} already serves the {self.to_group} Droplets"
        if self.via == "reserved_ip":
            return f"assign {self.subject} to Droplet {self.add[0]} ({self.to_group})"
        steps = []
        if self.add:
            steps.append(f"add Droplets {list(self.add)} ({self.to_group})")
        if self.add and self.settle_seconds:
            steps.append(f"wait {self.settle_seconds:g} s for its health check to pass them")
        if self.remove:
            steps.append(f"remove Droplets {list(self.remove)} ({', '.join(self.removed_from)})")
        return f"{self.subject}: " + ", then ".join(steps)

    @property
    def subject(self) -> str:
        """What the switch moves: `load balancer <id>` or `reserved IP <ip>`."""
        return f"load balancer {self.target}" if self.via == "load_balancer" else f"reserved IP {self.target}"


def group_of(members: frozenset[int], groups: Mapping[str, tuple[int, ...]]) -> str | None:
    """Which group is behind the switch: a group name, `mixed` (Droplets of both), or None (of neither)."""
    behind = [name for name, ids in groups.items() if members & set(ids)]
    if len(behind) > 1:
        return "mixed"
    return behind[0] if behind else None


def plan_switch(
    via: Via,
    target: str,
    members: frozenset[int],
    groups: Mapping[str, tuple[int, ...]],
    to: str,
    settle_seconds: float = 0.0,
) -> SwitchPlan:
    """The calls that put group `to` (alone of the groups) behind `target`."""
    wanted = groups[to]
    away = {i: name for name, ids in groups.items() if name != to for i in ids if i in members}
    # A reserved IP points at one Droplet: the group's first.
    add = tuple(i for i in wanted[: 1 if via == "reserved_ip" else None] if i not in members)
    removed_from = tuple(dict.fromkeys(away.values()))
    settle = settle_seconds if via == "load_balancer" and add else 0.0
    return SwitchPlan(via, target, to, group_of(members, groups), add, tuple(away), removed_from, settle)


def members_now(api: DropletApi, via: Via, target: str) -> frozenset[int]:
    """The Droplets behind the load balancer, or the one holding the reserved IP."""
    if via == "load_balancer":
        return api.members(target)
    assigned, _ = api.assigned(target)
    return frozenset() if assigned is None else frozenset({assigned})


def apply(api: DropletApi, plan: SwitchPlan, timeout: float) -> None:
    """Make the plan's calls, in order. Raises DeployError (DigitalOcean's answer) from the first that fails."""
    if plan.via == "reserved_ip":
        if plan.add:
            api.assign(plan.target, plan.add[0], timeout)
        return
    if plan.add:
        api.add(plan.target, plan.add)
    crash_points.reach("mid-switch")
    if plan.add and plan.settle_seconds:
        api.sleep(plan.settle_seconds)
    if plan.remove:
        api.remove(plan.target, plan.remove)
