"""Cross-field bounds on durations and counts that no single field's range can say.

Each field already has a finite range in the schema; these catch combinations that are each
in range but cannot work together: health checks whose worst case runs for days, verification
retries that cannot fit in their deadline, canary pauses adding up past a day, a metric range
no value can fall in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["MAX_RUN_SECONDS", "bound_problems"]

MAX_RUN_SECONDS = 86_400
"""The longest any one phase may plan to take: a deploy still running after a day has failed."""


def bound_problems(doc: Mapping[str, Any]) -> Iterator[str]:
    """Every combination of durations and counts that cannot work, as `field: problem; the fix`."""
    h = doc["health_check"]
    worst = h["retries"] * (h["timeout_seconds"] + h["interval_seconds"])
    if worst > MAX_RUN_SECONDS:
        yield (
            f"health_check.retries: {h['retries']} attempts of up to {h['timeout_seconds']:g} s, "
            f"{h['interval_seconds']:g} s apart, could take {worst / 3600:.1f} h; keep "
            "retries * (timeout_seconds + interval_seconds) within 24 h"
        )
    v = doc.get("verification") or {}
    deadline = v.get("deadline_seconds", 60)
    retries = v.get("retries", 1)
    interval = v.get("interval_seconds", 1)
    if (retries - 1) * interval >= deadline:
        yield (
            f"verification.retries: {retries} attempts {interval:g} s apart need {(retries - 1) * interval:g} s, "
            f"which does not fit in verification.deadline_seconds ({deadline:g}); raise deadline_seconds "
            "or lower retries or interval_seconds"
        )
    for index, check in enumerate(v.get("metrics", [])):
        if "min" in check and "max" in check and check["min"] > check["max"]:
            yield (
                f"verification.metrics[{index}].min: {check['min']:g} is above max {check['max']:g}, so no value "
                "could pass; swap them or widen the range"
            )
    steps = ((doc["deployment_config"].get("canary") or {}).get("steps")) or []
    paused = sum(step.get("pause_seconds", 0) for step in steps)
    if paused > MAX_RUN_SECONDS:
        yield (
            f"deployment_config.canary.steps: the pauses add up to {paused / 3600:.1f} h; keep the whole "
            "rollout within 24 h"
        )
