"""One place picks the strategy and turns the request into a plan; one executor carries it out.

Strategies differ only in the plan they build (see `steps.py`); the executor drives any
`Platform` through it and stops at the first failed check, reporting how far traffic had
moved so the rollback knows what to undo. What a plan asks of the platform follows from its
capabilities: a `TrafficRouter` is started without traffic and switched or split; any other platform
cuts over by itself on start. A split a router can only approximate is stated in the plan.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.contract import DeployConfig, HealthProbe
from orchestrator.errors import DeployError, HealthError, OrchestratorError
from orchestrator.health.verdict import Checks, CheckVerdict
from orchestrator.platforms.base import Platform, Release, TrafficRouter, TrafficShape, answers_on_a_url
from orchestrator.recovery import crash_points
from orchestrator.runlog import RunLog
from orchestrator.strategies import blue_green, canary, rolling
from orchestrator.strategies.steps import Analysis, Pause, PreSwitchCheck, Route, Start, Step, Verify, describe

__all__ = ["RolloutFailure", "RolloutOutcome", "RolloutPlan", "execute", "plan_rollout"]


@dataclass(frozen=True, slots=True)
class RolloutPlan:
    strategy: str
    platform: str
    old_version: str | None
    new_version: str
    steps: tuple[Step, ...]

    def describe(self) -> list[str]:
        return [f"{i}. {describe(step)}" for i, step in enumerate(self.steps, start=1)]


@dataclass
class RolloutOutcome:
    probes: list[HealthProbe] = field(default_factory=list)
    started: Release | None = None
    traffic_moved: bool = False
    switch_ms: float | None = None


class RolloutFailure(OrchestratorError):
    """A rollout stopped part-way; carries what happened so far for the rollback and the report."""

    def __init__(self, cause: OrchestratorError, outcome: RolloutOutcome) -> None:
        super().__init__(str(cause), step=cause.step)
        self.cause = cause
        self.outcome = outcome


def plan_rollout(
    config: DeployConfig, *, platform: Platform, old: str | None, new: str, image: str | None
) -> RolloutPlan:
    """Decide the rollout as data. Reads only its arguments (and, read-only, a router's traffic shape)."""
    shape = platform.traffic_shape() if isinstance(platform, TrafficRouter) else None
    return plan_for(config, shape, platform=platform.name, old=old, new=new, image=image)


def plan_for(
    config: DeployConfig, shape: TrafficShape | None, *, platform: str, old: str | None, new: str, image: str | None
) -> RolloutPlan:
    """The plan on a platform routing traffic with `shape`, or cutting over by itself (None). Pure."""
    d = config.deployment
    analysis = config.verification.before_switch
    self_cutover = shape is None
    steps: list[Step]
    if d.strategy == "blue_green":
        steps = blue_green.plan(old=old, new=new, image=image, analysis=analysis, cuts_over_itself=self_cutover)
    elif d.strategy == "canary":
        steps = canary.plan(old=old, new=new, image=image, analysis=analysis, steps=d.canary_steps)
    else:
        steps = rolling.plan(
            old=old,
            new=new,
            image=image,
            replicas=shape.replicas if shape else 1,
            pause_seconds=d.rolling.pause_seconds,
            analysis=analysis,
            cuts_over_itself=self_cutover,
        )
    if shape is not None and not shape.exact:
        steps = [_stated(step, shape) for step in steps]
    return RolloutPlan(d.strategy, platform, old, new, tuple(steps))


def _stated(step: Step, shape: TrafficShape) -> Step:
    """A split as the router will really give it, when that differs from what was asked."""
    if not isinstance(step, Route) or len(step.weights) != 2:
        return step
    (old, _), (new, weight) = step.weights
    effective = shape.effective(weight)
    if effective == weight:
        return step
    return dataclasses.replace(step, effective=((old, 100 - effective), (new, effective)))


def execute(
    plan: RolloutPlan,
    platform: Platform,
    checks: Checks,
    log: RunLog,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> RolloutOutcome:
    """Carry out the plan. Raises RolloutFailure (wrapping DeployError/HealthError) at the first failure."""
    outcome = RolloutOutcome()
    for step in plan.steps:
        log.info(describe(step))
        try:
            _run_step(step, plan, platform, checks, outcome, log, sleep)
        except OrchestratorError as exc:
            raise RolloutFailure(exc, outcome) from exc
        crash_points.reach(f"after-{type(step).__name__.lower()}")
    return outcome


def _run_step(
    step: Step,
    plan: RolloutPlan,
    platform: Platform,
    checks: Checks,
    outcome: RolloutOutcome,
    log: RunLog,
    sleep: Callable[[float], None],
) -> None:
    router = platform if isinstance(platform, TrafficRouter) else None
    match step:
        case Start(version, image, first_weight):
            if router is not None:
                outcome.started = router.start_sized(version, image, first_weight)
            else:
                outcome.started = platform.start(version, image)
                outcome.traffic_moved = True
        case PreSwitchCheck(analysis):
            release = outcome.started
            if release is None or release.url is None:
                raise DeployError("the new release has no direct address for pre-switch checks", operation="start")
            verdict = checks.release(release.url, analysis=analysis)
            _require(verdict, outcome, "pre-switch health check", phase="pre-switch", step="health")
        case Route(weights):
            if router is None:
                raise DeployError(
                    f"{platform.name} cannot route traffic; the plan needs a TrafficRouter", operation="route"
                )
            began = time.perf_counter()
            router.route(dict(weights))
            elapsed = (time.perf_counter() - began) * 1000
            outcome.traffic_moved = True
            if step.new_weight == 100:
                outcome.switch_ms = elapsed
            log.info(f"traffic switched in {elapsed:.1f} ms")
        case Pause(seconds):
            sleep(seconds)
        case Analysis(weight):
            verdict = checks.live(platform.live_url())
            _require(verdict, outcome, f"analysis at {weight}%", phase=f"canary {weight}%", step="analysis")
        case Verify():
            if not answers_on_a_url(platform):
                verify = getattr(platform, "verify_without_url", None)
                if callable(verify):
                    verify()  # raises DeployError: a failed verification like any other
                log.info(
                    "post-switch verification: the app has no URL (workers and jobs only); verified by what "
                    "exists instead: its deployment went live and its components report healthy"
                )
                return
            verdict = checks.live(platform.live_url())
            _require(verdict, outcome, "post-switch verification", phase="verification", step="verification")


def _require(verdict: CheckVerdict, outcome: RolloutOutcome, what: str, *, phase: str, step: str) -> None:
    release = outcome.started.version if outcome.started is not None else None
    outcome.probes.extend(p.during(phase, release) for p in verdict.probes)
    if not verdict.passed:
        raise HealthError(f"{what} failed: {verdict.reason or 'no reason given'}", check=what, step=step)
