"""Every mode the Action accepts has an order of steps in the pipeline's table of contents."""

from __future__ import annotations

from orchestrator.contract import MODES as ACCEPTED
from orchestrator.pipeline import MODES


def test_every_accepted_mode_has_its_steps() -> None:
    assert sorted(MODES) == sorted(ACCEPTED)
