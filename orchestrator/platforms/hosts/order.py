"""Which hosts move first: the order and the groups in which a rollout's shares move hosts (pure).

With `hosts.split: host` a share of traffic is made by moving whole hosts. They move in *units*:
`max_parallel` hosts at a time, or, with `hosts.group_by: <label>`, every host sharing that label's
value at once (a zone, a rack), a group whose hosts lack the label last. The canary hosts
(`hosts.canary_labels`: every host carrying all of those labels) come before all others, so a
canary's first step lands on them; the rest follow in config order. A weight moves the first units
it rounds to (`TrafficShape` with one replica per unit), at least one while it is above 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orchestrator.platforms.base import TrafficShape
from orchestrator.platforms.hosts.settings import HostConfig

__all__ = ["is_canary", "moved_hosts", "units"]


def is_canary(host: HostConfig, canary_labels: Mapping[str, str]) -> bool:
    labels = dict(host.labels)
    return bool(canary_labels) and all(labels.get(k) == v for k, v in canary_labels.items())


def units(
    hosts: Sequence[HostConfig],
    *,
    canary_labels: Mapping[str, str],
    group_by: str | None,
    max_parallel: int,
) -> list[tuple[str, ...]]:
    """Host names in the units they move in, first unit first."""
    ordered = [h for h in hosts if is_canary(h, canary_labels)] + [h for h in hosts if not is_canary(h, canary_labels)]
    if group_by is None:
        names = [h.name for h in ordered]
        return [tuple(names[i : i + max_parallel]) for i in range(0, len(names), max_parallel)]
    groups: dict[str, list[str]] = {}
    unlabelled: list[str] = []
    for host in ordered:
        value = dict(host.labels).get(group_by)
        if value is None:
            unlabelled.append(host.name)
        else:
            groups.setdefault(value, []).append(host.name)
    found = [tuple(names) for names in groups.values()]
    return [*found, tuple(unlabelled)] if unlabelled else found


def moved_hosts(unit_list: Sequence[tuple[str, ...]], weight: int) -> set[str]:
    """The hosts that take the new release when it is to get `weight` percent."""
    if weight <= 0:
        return set()
    shape = TrafficShape(replicas=len(unit_list), exact=False)
    count = min(len(unit_list), max(1, (len(unit_list) * shape.effective(weight) + 50) // 100))
    return {name for unit in unit_list[:count] for name in unit}
