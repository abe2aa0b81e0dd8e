"""Named points where a crash test kills the orchestrator: inert unless a test arms one on purpose.

The crash matrix (tests/recovery/, bench/recovery.py) must kill the orchestrator at exact points,
not after a sleep that hopes it got there. `reach(point)` SIGKILLs the process, like the OOM killer
or a cancelled job's hard kill would, when and only when all of these hold:

- `DEPLOY_ORCHESTRATOR_CRASH_AT` names this point;
- `DEPLOY_ORCHESTRATOR_CRASH_TEST` is `kill-this-process` (a second variable, so a stray first one
  does nothing);
- the run is not inside GitHub Actions (`GITHUB_ACTIONS` is not `true`): a workflow can never arm it.

It overrides nothing: the worst it can do is what any crash does, which recovery exists to handle.
"""

from __future__ import annotations

import os
import signal

__all__ = ["POINTS", "reach"]

POINTS = (
    "after-gates",
    "between-migrations",
    "inside-no-transaction",
    "after-start",
    "after-route",
    "after-verify",
    "during-rollback",
    "during-manual-rollback",
    "during-record",
    "after-outbox-store",
    "during-delivery",
    "after-notify",
    "before-delete",
    "after-delete",
    "mid-switch",
    "between-host-fires",
)
_ARMED = "kill-this-process"


def reach(point: str) -> None:
    env = os.environ
    if env.get("DEPLOY_ORCHESTRATOR_CRASH_AT") != point:
        return
    if env.get("DEPLOY_ORCHESTRATOR_CRASH_TEST") != _ARMED or env.get("GITHUB_ACTIONS") == "true":
        return
    os.kill(os.getpid(), signal.SIGKILL)
