"""Canary: the new release takes a growing share of new requests, with a pause and an analysis at
each step; any failed analysis sends every request back to the old release.

With `canary.analysis` each step's analysis also judges the canary against the old release on the
data plane's counters (`canary.judgement`); with `canary.webhooks` the phases are announced (and
gated) where Flagger announces them; with `canary.sticky` every canary route keeps clients where
they first landed. A judged step's window opens after a warm-up: the canary's first requests after
each route (a cold process, fresh connections) are left out, so an equal canary is not failed for
them and the limits need not be loosened.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.contract import CanaryStep
from orchestrator.contract.canary import AnalysisPolicy, Stickiness
from orchestrator.strategies.steps import Analysis, Hook, Pause, PreSwitchCheck, Route, Start, Step, Verify, Warmup


def plan(
    *,
    old: str | None,
    new: str,
    image: str | None,
    analysis: bool,
    steps: Sequence[CanaryStep],
    judged: AnalysisPolicy | None = None,
    sticky: Stickiness | None = None,
    hooks: bool = False,
) -> list[Step]:
    def hook(phase: Hook) -> list[Step]:
        return [phase] if hooks else []

    partial = [s.weight for s in steps if s.weight < 100]
    first = partial[0] if old is not None and partial else 100
    out: list[Step] = [*hook(Hook("confirm-rollout")), Start(new, image, first), PreSwitchCheck(analysis)]
    out += hook(Hook("pre-rollout"))
    if old is None:
        # Nothing to compare against on a first deploy: a canary is a plain switch.
        return [*out, Route(((new, 100),)), Verify(), *hook(Hook("post-rollout"))]
    for step in steps:
        if step.weight >= 100:
            break
        out.append(Route(((old, 100 - step.weight), (new, step.weight)), sticky))
        if judged is not None and step.analysis and (judged.warmup_requests or judged.warmup_seconds):
            out.append(Warmup(new, judged.warmup_requests, judged.warmup_seconds, judged.warmup_timeout_seconds))
        look = Analysis(step.weight, judged, new, old) if judged else Analysis(step.weight)
        if step.pause_seconds:
            watched = step.analysis and judged is not None and judged.interval_seconds
            out.append(Pause(step.pause_seconds, look if watched else None))
        if step.analysis:
            out.append(look)
        out += hook(Hook("rollout", step.weight))
    out += hook(Hook("confirm-promotion"))
    return [*out, Route(((new, 100),)), Verify(), *hook(Hook("post-rollout"))]
