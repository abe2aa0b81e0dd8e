"""Canary: the new release takes a growing share of new requests, with a pause and an analysis at
each step; any failed analysis sends every request back to the old release."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.contract import CanaryStep
from orchestrator.strategies.steps import Analysis, Pause, PreSwitchCheck, Route, Start, Step, Verify


def plan(*, old: str | None, new: str, image: str | None, analysis: bool, steps: Sequence[CanaryStep]) -> list[Step]:
    partial = [s.weight for s in steps if s.weight < 100]
    first = partial[0] if old is not None and partial else 100
    out: list[Step] = [Start(new, image, first), PreSwitchCheck(analysis)]
    if old is None:
        # Nothing to compare against on a first deploy: a canary is a plain switch.
        return [*out, Route(((new, 100),)), Verify()]
    for step in steps:
        if step.weight >= 100:
            break
        out.append(Route(((old, 100 - step.weight), (new, step.weight))))
        if step.pause_seconds:
            out.append(Pause(step.pause_seconds))
        if step.analysis:
            out.append(Analysis(step.weight))
    return [*out, Route(((new, 100),)), Verify()]
