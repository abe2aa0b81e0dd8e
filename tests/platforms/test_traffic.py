"""A data plane's counters (`platforms.traffic`): windows between readings, and quantiles from buckets."""

from __future__ import annotations

from orchestrator.platforms.traffic import TrafficSample, window
from tests.traffic_readings import traffic


def test_a_window_is_the_difference_of_two_readings_and_a_reset_starts_it_again() -> None:
    before = TrafficSample({"v1": traffic([0.01] * 10), "v2": traffic([0.01] * 50)})
    after = TrafficSample({"v1": traffic([0.01] * 25), "v2": traffic([0.01] * 5), "v3": traffic([0.01] * 3)})
    got = window(before, after)
    assert got.get("v1").requests == 15 and got.get("v1").buckets is not None and sum(got.get("v1").buckets) == 15
    assert got.get("v2").requests == 5, "a counter that went down was reset: the later reading is the window"
    assert got.get("v3").requests == 3 and got.get("gone").requests == 0


def test_the_quantile_is_read_from_the_buckets() -> None:
    reading = traffic([0.010] * 95 + [0.100] * 5)
    p50, p99 = reading.quantile(0.5), reading.quantile(0.99)
    assert p50 is not None and 0.008 < p50 <= 0.0105
    assert p99 is not None and 0.08 < p99 <= 0.125, "within one bucket (25% wide) of the true 0.1 s"
