"""Rolling: traffic moves to the new release one replica's share at a time, each share checked
before the next, so capacity never drops (maxUnavailable 0)."""

from __future__ import annotations

from orchestrator.strategies.steps import Analysis, Pause, PreSwitchCheck, Route, Start, Step, Verify


def plan(
    *,
    old: str | None,
    new: str,
    image: str | None,
    replicas: int,
    pause_seconds: float,
    analysis: bool,
    cuts_over_itself: bool,
) -> list[Step]:
    if cuts_over_itself:
        return [Start(new, image), Verify()]
    if old is None or replicas <= 1:
        return [Start(new, image), PreSwitchCheck(analysis), Route(((new, 100),)), Verify()]
    out: list[Step] = [Start(new, image, round(100 / replicas)), PreSwitchCheck(analysis)]
    for i in range(1, replicas):
        weight = round(100 * i / replicas)
        out.append(Route(((old, 100 - weight), (new, weight))))
        if pause_seconds:
            out.append(Pause(pause_seconds))
        out.append(Analysis(weight))
    return [*out, Route(((new, 100),)), Verify()]
