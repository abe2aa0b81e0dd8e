"""The routing table: which release each new request goes to, by weight.

A table is immutable; the proxy holds one and a switch replaces it with a single assignment,
so a request sees either the old table or the new one, never half of each.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["RouteTable", "check_weights"]

T = TypeVar("T")


def check_weights(weights: Mapping[str, int], known: set[str] | frozenset[str]) -> dict[str, int]:
    """Validated weights without zero entries. Raises ValueError saying what is wrong and how to fix it."""
    problems = []
    for version, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            problems.append(f"weight of {version!r} is {weight!r}: use an integer from 0 to 100")
        elif version not in known and weight > 0:
            problems.append(f"release {version!r} is not running: start it before routing traffic to it")
    if problems:
        raise ValueError("; ".join(problems))
    total = sum(weights.values())
    if total != 100:
        raise ValueError(f"weights {dict(weights)} sum to {total}: they must sum to 100")
    return {version: weight for version, weight in weights.items() if weight > 0}


@dataclass(frozen=True, slots=True)
class RouteTable(Generic[T]):
    """Targets with cumulative weights; `pick()` chooses one per request."""

    targets: tuple[T, ...] = ()
    cumulative: tuple[int, ...] = ()

    @classmethod
    def build(cls, weighted: Mapping[str, int], targets: Mapping[str, T]) -> RouteTable[T]:
        chosen: list[T] = []
        cumulative: list[int] = []
        running = 0
        for version, weight in weighted.items():
            if weight <= 0:
                continue
            running += weight
            chosen.append(targets[version])
            cumulative.append(running)
        return cls(tuple(chosen), tuple(cumulative))

    def pick(self, rng: random.Random | None = None) -> T | None:
        """The target for one new request, or None when nothing takes traffic."""
        if len(self.targets) == 1:
            return self.targets[0]
        if not self.targets:
            return None
        roll = (rng or random).randrange(self.cumulative[-1])
        return self.targets[bisect_right(self.cumulative, roll)]
