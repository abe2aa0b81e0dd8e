"""Rollout plans are plain data: every strategy's plan, step by step, for the cases that matter."""

from __future__ import annotations

from pathlib import Path

from orchestrator.config import parse_config
from orchestrator.contract import CanaryStep
from orchestrator.strategies import blue_green, canary, rolling
from orchestrator.strategies.base import RolloutPlan
from orchestrator.strategies.steps import Analysis, Pause, PreSwitchCheck, Route, Start, Verify


def test_blue_green_checks_the_new_release_before_one_atomic_switch() -> None:
    steps = blue_green.plan(old="v1", new="v2", image="img@sha256:ab", analysis=False, cuts_over_itself=False)
    assert steps == [Start("v2", "img@sha256:ab"), PreSwitchCheck(False), Route((("v2", 100),)), Verify()]


def test_blue_green_on_a_self_cutting_platform_leaves_the_gate_to_the_platform() -> None:
    assert blue_green.plan(old="v1", new="v2", image=None, analysis=True, cuts_over_itself=True) == [
        Start("v2", None),
        Verify(),
    ]


def test_canary_steps_weights_pauses_and_analysis_then_promotes() -> None:
    steps = canary.plan(
        old="v1",
        new="v2",
        image=None,
        analysis=True,
        steps=(CanaryStep(10, 30.0), CanaryStep(50, 0.0, analysis=False), CanaryStep(100)),
    )
    assert steps == [
        Start("v2", None, first_weight=10),
        PreSwitchCheck(True),
        Route((("v1", 90), ("v2", 10))),
        Pause(30.0),
        Analysis(10),
        Route((("v1", 50), ("v2", 50))),
        Route((("v2", 100),)),
        Verify(),
    ]


def test_a_first_canary_has_nothing_to_compare_with_and_is_a_plain_switch() -> None:
    assert canary.plan(old=None, new="v1", image=None, analysis=False, steps=(CanaryStep(10),)) == [
        Start("v1", None),
        PreSwitchCheck(False),
        Route((("v1", 100),)),
        Verify(),
    ]


def test_rolling_moves_one_replica_share_at_a_time_with_analysis_between() -> None:
    steps = rolling.plan(
        old="v1", new="v2", image=None, replicas=4, pause_seconds=5.0, analysis=True, cuts_over_itself=False
    )
    assert steps == [
        Start("v2", None, first_weight=25),
        PreSwitchCheck(True),
        Route((("v1", 75), ("v2", 25))),
        Pause(5.0),
        Analysis(25),
        Route((("v1", 50), ("v2", 50))),
        Pause(5.0),
        Analysis(50),
        Route((("v1", 25), ("v2", 75))),
        Pause(5.0),
        Analysis(75),
        Route((("v2", 100),)),
        Verify(),
    ]


def test_a_plan_describes_itself_for_plan_mode_and_the_summary() -> None:
    steps = blue_green.plan(old="v1", new="v2", image=None, analysis=False, cuts_over_itself=False)
    plan = RolloutPlan("blue_green", "local", "v1", "v2", tuple(steps))
    assert plan.describe() == [
        "1. start release v2",
        "2. health-check the new release before traffic moves",
        "3. route 100% to v2",
        "4. verify the live release (health, database, endpoints, jobs, metrics)",
    ]


def test_a_split_the_platform_can_only_approximate_is_stated_with_what_it_really_gets() -> None:
    from orchestrator.platforms.base import TrafficShape
    from orchestrator.strategies.base import plan_for
    from tests.workspace import base_config

    document = base_config()
    document["deployment_config"]["strategy"] = "canary"
    document["deployment_config"]["canary"] = {"steps": [{"weight": 10}, {"weight": 50}]}
    config = parse_config(document, Path.cwd())
    coarse = plan_for(
        config, TrafficShape(replicas=4, exact=False), platform="kubernetes", old="v1", new="v2", image=None
    )
    assert coarse.describe()[2] == (
        "3. route 90% to v1, 10% to v2 (effective 75% to v1, 25% to v2: the platform splits by whole replicas)"
    )
    exact = plan_for(config, TrafficShape(replicas=4, exact=True), platform="local", old="v1", new="v2", image=None)
    assert exact.describe()[2] == "3. route 90% to v1, 10% to v2"
    assert plan_for(config, None, platform="x", old="v1", new="v2", image=None).describe()[:1] == [
        "1. start release v2"
    ]


def test_a_judged_canary_with_webhooks_and_sticky_sessions_is_planned_phase_by_phase() -> None:
    from orchestrator.contract.canary import AnalysisPolicy, Stickiness
    from orchestrator.strategies.steps import Hook, Warmup, describe

    policy, sticky = AnalysisPolicy(), Stickiness()
    steps = canary.plan(
        old="v1",
        new="v2",
        image=None,
        analysis=False,
        steps=(CanaryStep(10, 5.0), CanaryStep(50), CanaryStep(100)),
        judged=policy,
        sticky=sticky,
        hooks=True,
    )
    assert steps == [
        Hook("confirm-rollout"),
        Start("v2", None, 10),
        PreSwitchCheck(False),
        Hook("pre-rollout"),
        Route((("v1", 90), ("v2", 10)), sticky),
        Warmup("v2", 20),
        Pause(5.0),
        Analysis(10, policy, "v2", "v1"),
        Hook("rollout", 10),
        Route((("v1", 50), ("v2", 50)), sticky),
        Warmup("v2", 20),
        Analysis(50, policy, "v2", "v1"),
        Hook("rollout", 50),
        Hook("confirm-promotion"),
        Route((("v2", 100),)),
        Verify(),
        Hook("post-rollout"),
    ]
    assert describe(steps[4]) == "route 90% to v1, 10% to v2 (sticky sessions)"
    assert describe(steps[5]) == "warm up v2: its first 20 requests left out of the analysis"
    assert describe(steps[7]) == "analysis at 10%: v2 against v1 (p95 +20%, errors +1 pts)"
    assert describe(steps[8]) == "webhooks: rollout at 10%"


def test_a_judged_canary_with_an_interval_watches_its_pauses() -> None:
    from orchestrator.contract.canary import AnalysisPolicy
    from orchestrator.strategies.steps import describe

    policy = AnalysisPolicy(interval_seconds=5, warmup_requests=0)
    steps = canary.plan(
        old="v1",
        new="v2",
        image=None,
        analysis=False,
        steps=(CanaryStep(10, 60.0), CanaryStep(50, 30.0, analysis=False), CanaryStep(100)),
        judged=policy,
    )
    watched = Analysis(10, policy, "v2", "v1")
    assert steps[2:6] == [
        Route((("v1", 90), ("v2", 10))),
        Pause(60.0, watched),
        watched,
        Route((("v1", 50), ("v2", 50))),
    ]
    assert steps[6] == Pause(30.0), "a step without analysis is not watched"
    assert describe(steps[3]) == "pause 60s, judging every 5s"


def test_a_judged_step_warms_its_canary_up_before_the_window_opens_unless_told_not_to() -> None:
    from orchestrator.contract.canary import AnalysisPolicy
    from orchestrator.strategies.steps import Warmup, describe

    policy = AnalysisPolicy(warmup_requests=50, warmup_seconds=2, warmup_timeout_seconds=9)
    steps = canary.plan(
        old="v1",
        new="v2",
        image=None,
        analysis=False,
        steps=(CanaryStep(10, 5.0), CanaryStep(50, 5.0, analysis=False), CanaryStep(100)),
        judged=policy,
    )
    assert steps[2:5] == [Route((("v1", 90), ("v2", 10))), Warmup("v2", 50, 2, 9), Pause(5.0)]
    assert steps[6:8] == [Route((("v1", 50), ("v2", 50))), Pause(5.0)], "a step nothing judges needs no warm-up"
    assert describe(steps[3]) == "warm up v2: its first 50 requests left out of the analysis, at least 2s"
    cold = canary.plan(
        old="v1",
        new="v2",
        image=None,
        analysis=False,
        steps=(CanaryStep(10, 5.0), CanaryStep(100)),
        judged=AnalysisPolicy(warmup_requests=0),
    )
    assert not any(isinstance(s, Warmup) for s in cold)
