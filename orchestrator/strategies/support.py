"""Which strategies a platform can run, derived from its capabilities rather than kept in a table.

- blue_green: an atomic switch (a `TrafficRouter` routing 100%), or a platform that cuts over by
  itself once the new release passes its health gate.
- rolling: one replica's share at a time through a `TrafficRouter`, or the platform's own rolling
  cutover.
- canary: growing shares of traffic, which only a `TrafficRouter` can give.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from orchestrator.contract import STRATEGIES
from orchestrator.platforms.base import TrafficRouter

__all__ = ["REQUIREMENTS", "supported", "unsupported_problem"]

REQUIREMENTS: Mapping[str, frozenset[type]] = {
    "blue_green": frozenset(),
    "rolling": frozenset(),
    "canary": frozenset({TrafficRouter}),
}


def supported(capabilities: Iterable[type]) -> frozenset[str]:
    have = frozenset(capabilities)
    return frozenset(s for s, needs in REQUIREMENTS.items() if needs <= have)


def unsupported_problem(strategy: str, platform: str, by_platform: Mapping[str, Iterable[type]]) -> str | None:
    """The config error for `strategy` on `platform`, naming the alternatives both ways; None if it runs."""
    can = supported(by_platform[platform])
    if strategy in can:
        return None
    alternatives = ", ".join(s for s in STRATEGIES if s in can)
    others = ", ".join(p for p, caps in by_platform.items() if strategy in supported(caps))
    return (
        f"deployment_config.strategy: {strategy} is not possible on {platform}; "
        f"use {alternatives} there, or platform {others} for {strategy}"
    )
