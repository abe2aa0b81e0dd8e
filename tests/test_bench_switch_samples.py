"""bench/switch.py's switch samples: attributed by completion time, measured to when traffic moved."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from switch_load import switch_samples

B, G = b"blue", b"green"


def test_a_connection_moves_when_it_sends_its_first_request_the_new_release_answers() -> None:
    # Switch to green at t=1.0 (s). The request sent at 0.99 is in flight and finishes on blue at 1.02;
    # the next, sent then, is green's first answer at 1.03.
    records = [(0, 0.98, 0.99, B), (0, 0.99, 1.02, B), (0, 1.02, 1.03, G), (0, 1.03, 1.04, G)]
    samples = switch_samples(records, [(1.0, G)])
    assert samples.moved == [pytest.approx(20.0)]
    assert samples.answered == [pytest.approx(30.0)]
    assert samples.effect == [pytest.approx(20.0)]


def test_a_request_in_flight_at_the_next_switch_counts_for_the_switch_it_completed_in() -> None:
    # Switches: green at 1.0, blue at 2.0. A green answer sent at 1.5 completes at 2.1, after the switch
    # back to blue: it belongs to the second window, where blue answers from 2.1 on.
    records = [(0, 1.01, 1.02, G), (0, 1.5, 2.1, G), (0, 2.1, 2.2, B)]
    samples = switch_samples(records, [(1.0, G), (2.0, B)])
    assert samples.moved == [pytest.approx(10.0), pytest.approx(100.0)]
    assert samples.answered == [pytest.approx(20.0), pytest.approx(200.0)]


def test_a_connection_that_never_moved_is_charged_the_whole_interval() -> None:
    records = [(0, 1.1, 1.2, B), (0, 1.2, 1.9, B), (1, 1.0, 1.05, G)]
    samples = switch_samples(records, [(1.0, G), (2.0, B)])
    assert sorted(samples.moved) == [pytest.approx(0.0), pytest.approx(1000.0)]
    assert samples.effect == [pytest.approx(0.0)]
    assert samples.unmoved == 1
