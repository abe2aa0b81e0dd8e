"""The canary's warm-up, end to end on the local platform under continuous load, with the analysis'
default limits: a freshly started canary whose first requests are slow (as a cold process's are;
the demo app's `cold_seconds`) is not failed for them, and a truly slower one still is.

Both releases do the same work (`delay_ms`, long beside a loaded machine's scheduling noise) and
start cold for the same time, whatever the machine's speed; the old one has warmed up before the
canary starts. The warm-up lasts `warmup_seconds` (and at least the default 20 requests). Slow:
each test deploys twice under load (~15 s on a loaded machine).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from tests.test_pipeline_canary import canary, load, verdicts
from tests.test_pipeline_local import Workspace
from tests.test_pipeline_local import agentbench as agentbench
from tests.test_pipeline_local import ws as ws

WORK_MS = 40
COLD = {"cold_seconds": 1.5, "cold_delay_ms": 200}
WARM_UP = {"warmup_seconds": 2}


def setup(ws: Workspace, v2: dict[str, Any], **analysis: Any) -> None:
    canary(ws, {"v1": {"delay_ms": WORK_MS, **COLD}, "v2": v2})
    c = ws.config["deployment_config"]["canary"]
    c["steps"] = [{"weight": 50, "pause_seconds": 1}, {"weight": 100}]
    # The limits (p95, errors, alpha) and on_inconclusive are the defaults; only the waits are short.
    c["analysis"] = {"min_requests": 30, "extend_seconds": 0.5, "max_extensions": 3, **analysis}
    assert ws.deploy("v1").exit_code == 0
    session = requests.Session()
    warm = time.monotonic() + COLD["cold_seconds"] + 0.2
    while time.monotonic() < warm:  # the old release is past its cold start
        session.get(f"http://127.0.0.1:{ws.port}/work", timeout=10).raise_for_status()


@pytest.mark.slow
def test_an_equal_canary_that_starts_cold_passes_the_default_limits_after_its_warm_up(ws: Workspace) -> None:
    setup(ws, {"delay_ms": WORK_MS, **COLD}, **WARM_UP)
    with load(ws, clients=4) as seen:
        run = ws.deploy("v2")

    assert run.exit_code == 0, run.result and run.result.error
    judged = verdicts(run)
    assert judged[-1]["outcome"] == "pass" and judged[-1]["weight"] == 50
    assert not any(k.startswith("failed") for k in seen), seen
    assert run.result is not None
    assert any(e.message.startswith("warm-up: ") and "left out of the analysis" in e.message for e in run.result.logs)
    assert ws.serving() == "v2"


@pytest.mark.slow
def test_without_the_warm_up_the_same_equal_canary_fails_on_its_cold_start(ws: Workspace) -> None:
    """What the warm-up is for: the same two releases, judged from the canary's first request."""
    setup(ws, {"delay_ms": WORK_MS, **COLD}, warmup_requests=0)
    with load(ws, clients=4):
        run = ws.deploy("v2")

    assert run.exit_code == 1 and run.result is not None and run.result.status == "rolled_back"
    latency = verdicts(run)[-1]["metrics"][0]
    assert latency["metric"] == "latency_p95" and latency["outcome"] in ("fail", "inconclusive")
    assert "canary analysis at 50%" in (run.result.error or "")
    assert ws.serving() == "v1"


@pytest.mark.slow
def test_a_truly_slower_canary_still_fails_after_its_warm_up(ws: Workspace) -> None:
    setup(ws, {"delay_ms": WORK_MS * 3, **COLD}, **WARM_UP)
    with load(ws, clients=4) as seen:
        run = ws.deploy("v2")

    assert run.exit_code == 1 and run.result is not None and run.result.status == "rolled_back"
    latency = verdicts(run)[-1]["metrics"][0]
    assert latency["metric"] == "latency_p95" and latency["outcome"] == "fail"
    assert latency["effect"] > 100, "three times the work: the p95 is far above the baseline's"
    assert not any(k.startswith("failed") for k in seen), seen
    assert ws.serving() == "v1"
