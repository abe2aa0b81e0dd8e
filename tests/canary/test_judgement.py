"""The verdict on a canary step, from counters alone: exact numbers, every outcome, every test."""

from __future__ import annotations

import numpy as np

from orchestrator.canary.judgement import compare_latency, judge, next_move
from orchestrator.contract.canary import AnalysisPolicy
from orchestrator.platforms.traffic import LATENCY_BOUNDS, ReleaseTraffic, TrafficSample
from tests.traffic_readings import traffic

POLICY = AnalysisPolicy(min_requests=100)


def latencies(median_s: float, n: int, seed: int) -> list[float]:
    return list(np.random.default_rng(seed).lognormal(np.log(median_s), 0.3, n))


def sample(canary: ReleaseTraffic, baseline: ReleaseTraffic) -> TrafficSample:
    return TrafficSample({"v2": canary, "v1": baseline})


def test_an_equal_canary_passes() -> None:
    verdict = judge(
        sample(traffic(latencies(0.01, 300, 1)), traffic(latencies(0.01, 2700, 2))),
        canary="v2",
        baseline="v1",
        weight=10,
        policy=POLICY,
    )
    assert verdict.outcome == "pass", verdict.describe()
    assert [m.outcome for m in verdict.metrics] == ["pass", "pass"]
    assert (verdict.canary_requests, verdict.baseline_requests) == (300, 2700)


def test_a_canary_twice_as_slow_fails_on_latency_with_its_numbers() -> None:
    verdict = judge(
        sample(traffic(latencies(0.02, 200, 3)), traffic(latencies(0.01, 1800, 4))),
        canary="v2",
        baseline="v1",
        weight=10,
        policy=POLICY,
    )
    latency, errors = verdict.metrics
    assert verdict.outcome == "fail" and latency.outcome == "fail" and errors.outcome == "pass"
    assert latency.effect is not None and 60 < latency.effect < 160
    assert latency.p_value is not None and latency.p_value < 1e-6
    assert latency.test == "mann-whitney-u (bucketed)"
    assert "latency_p95 fail: canary" in verdict.describe()


def test_five_more_points_of_errors_fail_by_fisher_and_by_two_proportions() -> None:
    canary = traffic(latencies(0.01, 200, 5), errors=10)
    baseline = traffic(latencies(0.01, 1800, 6), errors=0)
    for test in ("fisher", "two_proportion"):
        policy = AnalysisPolicy(min_requests=100, error_test=test)
        verdict = judge(sample(canary, baseline), canary="v2", baseline="v1", weight=10, policy=policy)
        errors = verdict.metrics[1]
        assert verdict.outcome == "fail" and errors.outcome == "fail", verdict.describe()
        assert errors.canary == 5.0 and errors.baseline == 0.0 and errors.effect == 5.0
        assert errors.p_value is not None and errors.p_value < 1e-4


def test_a_difference_that_matters_but_is_not_yet_significant_is_inconclusive() -> None:
    verdict = judge(
        sample(traffic(latencies(0.01, 100, 7), errors=2), traffic(latencies(0.01, 100, 8), errors=0)),
        canary="v2",
        baseline="v1",
        weight=10,
        policy=POLICY,
    )
    assert verdict.metrics[1].outcome == "inconclusive" and verdict.outcome == "inconclusive"


def test_a_small_significant_difference_does_not_matter() -> None:
    canary = traffic(latencies(0.0105, 20000, 9))
    baseline = traffic(latencies(0.01, 20000, 10))
    verdict = judge(sample(canary, baseline), canary="v2", baseline="v1", weight=50, policy=POLICY)
    latency = verdict.metrics[0]
    assert latency.p_value is not None and latency.p_value < 0.05
    assert latency.outcome == "pass"


def test_too_few_requests_is_inconclusive_and_extends_then_decides_as_configured() -> None:
    verdict = judge(
        sample(traffic(latencies(0.01, 20, 11)), traffic(latencies(0.01, 500, 12))),
        canary="v2",
        baseline="v1",
        weight=10,
        policy=POLICY,
    )
    assert verdict.outcome == "inconclusive"
    assert "too few requests: 20 canary, 500 baseline; at least 100 each" in verdict.describe()
    assert next_move(verdict, AnalysisPolicy(max_extensions=1)) == "extend"
    last = judge(
        sample(traffic([0.01] * 20), traffic([0.01] * 500)),
        canary="v2",
        baseline="v1",
        weight=10,
        policy=POLICY,
        look=1,
    )
    assert next_move(last, AnalysisPolicy(max_extensions=1)) == "abort"
    assert next_move(last, AnalysisPolicy(max_extensions=1, on_inconclusive="pass")) == "promote"


def test_without_a_histogram_latency_is_unmeasured_and_errors_decide() -> None:
    canary = ReleaseTraffic(500, (0, 500, 0, 0, 0), 0, LATENCY_BOUNDS, None)
    verdict = judge(
        sample(canary, canary),
        canary="v2",
        baseline="v1",
        weight=10,
        policy=POLICY,
    )
    assert [m.outcome for m in verdict.metrics] == ["unmeasured", "pass"] and verdict.outcome == "pass"
    assert verdict.to_dict()["metrics"][0]["canary"] is None


def test_latency_on_raw_samples() -> None:
    slow, fast = latencies(0.02, 150, 13), latencies(0.01, 150, 14)
    verdict = compare_latency(
        slow, fast, float(np.percentile(slow, 95)) * 1000, float(np.percentile(fast, 95)) * 1000, POLICY
    )
    assert verdict.outcome == "fail" and verdict.test == "mann-whitney-u"
