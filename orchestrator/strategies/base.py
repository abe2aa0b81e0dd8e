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

from orchestrator.canary.judgement import Verdict, judge, next_move
from orchestrator.canary.webhooks import PhaseHooks
from orchestrator.contract import DeployConfig, HealthProbe
from orchestrator.errors import DeployError, HealthError, OrchestratorError
from orchestrator.health.verdict import Checks, CheckVerdict
from orchestrator.platforms.base import Platform, Release, TrafficRouter, TrafficShape, answers_on_a_url
from orchestrator.platforms.traffic import StickyRouter, TrafficMeter, TrafficSample, window
from orchestrator.recovery import crash_points
from orchestrator.runlog import RunLog
from orchestrator.strategies import blue_green, canary, rolling
from orchestrator.strategies.steps import (
    Analysis,
    Hook,
    Pause,
    PreSwitchCheck,
    Route,
    Start,
    Step,
    Verify,
    Warmup,
    describe,
)

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
    verdicts: list[Verdict] = field(default_factory=list)
    """Every canary analysis verdict, in order (an extended step has one per look)."""
    window_start: TrafficSample | None = None
    """The data plane's counters when the current step's weights took effect."""


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
        steps = canary.plan(
            old=old,
            new=new,
            image=image,
            analysis=analysis,
            steps=d.canary_steps,
            judged=d.canary_analysis,
            sticky=d.canary_sticky,
            hooks=bool(d.canary_webhooks),
        )
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
    hooks: PhaseHooks | None = None,
    meter: TrafficMeter | None = None,
) -> RolloutOutcome:
    """Carry out the plan. Raises RolloutFailure (wrapping DeployError/HealthError) at the first failure.

    `meter` counts requests per release for `canary.analysis` (Prometheus on Kubernetes); by default
    the platform's own data plane, when it counts (local)."""
    outcome = RolloutOutcome()
    if meter is None and isinstance(platform, TrafficMeter):
        meter = platform
    for step in plan.steps:
        log.info(describe(step))
        try:
            _run_step(step, plan, platform, checks, outcome, log, sleep, hooks, meter)
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
    hooks: PhaseHooks | None,
    meter: TrafficMeter | None,
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
        case Route(weights, sticky):
            if router is None:
                raise DeployError(
                    f"{platform.name} cannot route traffic; the plan needs a TrafficRouter", operation="route"
                )
            began = time.perf_counter()
            if sticky is not None and len(weights) > 1 and isinstance(platform, StickyRouter):
                platform.route_sticky(dict(weights), sticky)
            else:
                router.route(dict(weights))
            elapsed = (time.perf_counter() - began) * 1000
            if meter is not None and any(isinstance(s, Analysis) and s.judged for s in plan.steps):
                outcome.window_start = meter.traffic()
            outcome.traffic_moved = True
            if step.new_weight == 100:
                outcome.switch_ms = elapsed
            log.info(f"traffic switched in {elapsed:.1f} ms")
        case Warmup():
            if meter is not None:
                _warm_up(step, meter, outcome, log, sleep)
        case Pause(seconds, watch):
            if watch is not None and meter is not None:
                _watch(seconds, watch, meter, outcome, log, sleep)
            else:
                sleep(seconds)
        case Analysis(weight, judged):
            verdict = checks.live(platform.live_url())
            _require(verdict, outcome, f"analysis at {weight}%", phase=f"canary {weight}%", step="analysis")
            if judged is not None:
                _judge(step, meter, platform.name, outcome, log, sleep)
        case Hook(phase, weight):
            if hooks:
                hooks.phase(
                    phase,
                    {
                        "version": plan.new_version,
                        "previous": plan.old_version,
                        "weight": weight,
                        "strategy": plan.strategy,
                        "platform": plan.platform,
                        "verdicts": [v.to_dict() for v in outcome.verdicts],
                    },
                )
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


_WARMUP_LOOK_SECONDS = 0.05


def _warm_up(
    step: Warmup, meter: TrafficMeter, outcome: RolloutOutcome, log: RunLog, sleep: Callable[[float], None]
) -> None:
    """Wait until the canary has served `step.requests` since its route (and `step.seconds` passed),
    at most `step.timeout_seconds`; the analysis window opens then, leaving those requests out."""
    start = outcome.window_start or meter.traffic()
    began = time.monotonic()
    while True:
        now = meter.traffic()
        served = window(start, now).get(step.version).requests
        elapsed = time.monotonic() - began
        if served >= step.requests and elapsed >= step.seconds:
            log.info(f"warm-up: {served} requests to {step.version} in {elapsed:.1f} s left out of the analysis")
            break
        if elapsed >= step.timeout_seconds:
            log.warn(
                f"warm-up: {step.version} served {served} of {step.requests} warm-up requests in "
                f"{step.timeout_seconds:g} s (canary.analysis.warmup_timeout_seconds); the analysis window opens now"
            )
            break
        sleep(_WARMUP_LOOK_SECONDS)
    outcome.window_start = now


def _watch(
    seconds: float,
    step: Analysis,
    meter: TrafficMeter,
    outcome: RolloutOutcome,
    log: RunLog,
    sleep: Callable[[float], None],
) -> None:
    """Pause for `seconds`, judging the canary every `interval_seconds`; raise at the first fail."""
    policy = step.judged
    assert policy is not None and policy.interval_seconds
    ends = time.monotonic() + seconds
    while (left := ends - time.monotonic()) > 0:
        sleep(min(policy.interval_seconds, left))
        verdict = _verdict_since_route(step, meter, outcome, early=True)
        if verdict.outcome == "fail":
            outcome.verdicts.append(verdict)
            log.info(verdict.describe() + " -> abort")
            raise _aborted(step, verdict)


def _judge(
    step: Analysis,
    meter: TrafficMeter | None,
    platform: str,
    outcome: RolloutOutcome,
    log: RunLog,
    sleep: Callable[[float], None],
) -> None:
    """Judge the canary on the counters since the step's Route, extending the window while inconclusive."""
    policy = step.judged
    assert policy is not None
    if meter is None:
        raise DeployError(
            f"canary.analysis needs a data plane that counts requests; platform {platform} has none "
            "(on kubernetes, name one with canary.analysis.prometheus_url)",
            operation="analysis",
        )
    look = 0
    while True:
        verdict = _verdict_since_route(step, meter, outcome, look=look)
        outcome.verdicts.append(verdict)
        move = next_move(verdict, policy)
        log.info(verdict.describe() + f" -> {move}")
        if move == "promote":
            return
        if move == "abort":
            raise _aborted(step, verdict)
        sleep(policy.extend_seconds)
        look += 1


def _verdict_since_route(
    step: Analysis, meter: TrafficMeter, outcome: RolloutOutcome, *, look: int = 0, early: bool = False
) -> Verdict:
    """The verdict on the counters since the step's Route (the whole count when none was read then)."""
    assert step.judged is not None
    return judge(
        window(outcome.window_start or TrafficSample(), meter.traffic()),
        canary=step.canary,
        baseline=step.baseline,
        weight=step.weight,
        policy=step.judged,
        look=look,
        early=early,
    )


def _aborted(step: Analysis, verdict: Verdict) -> HealthError:
    return HealthError(
        f"canary analysis at {step.weight}%: {verdict.describe()}", check="canary analysis", step="analysis"
    )


def _require(verdict: CheckVerdict, outcome: RolloutOutcome, what: str, *, phase: str, step: str) -> None:
    release = outcome.started.version if outcome.started is not None else None
    outcome.probes.extend(p.during(phase, release) for p in verdict.probes)
    if not verdict.passed:
        raise HealthError(f"{what} failed: {verdict.reason or 'no reason given'}", check=what, step=step)
