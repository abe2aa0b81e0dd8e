"""Cancellation: a cancelled job sends SIGINT/SIGTERM, then kills the orchestrator a few seconds later.

In those seconds the run does only what cannot wait: it stops waiting (the signal interrupts
whatever it was blocked on), puts traffic back on the release that was live before, if this run
moved it, and says what it did. Everything else (the schema, the new release's processes, the
ledger row) is left to recovery, which the next run performs: the row stays `in_progress` at step
`cancelled`, and the run's liveness lock goes with the process. The exit code is non-zero.

Putting traffic back is one idempotent call (`Platform.rollback`): the proxy, the Service selector
or App Platform's rollback switch in one step, so a cancellation never leaves traffic split. A
second signal during that call is ignored rather than interrupting it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from orchestrator.errors import OrchestratorError
from orchestrator.platforms.base import Platform, Release

__all__ = ["Cancellation", "Cancelled", "cancel_rollout", "on_signals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Steps during which this run may have moved traffic to its release (and not yet verified it).
_TRAFFIC_STEPS = frozenset({"rollout", "rollback"})


# A BaseException, like KeyboardInterrupt: no `except Exception` on the way up may swallow it.
class Cancelled(BaseException):
    """The job was cancelled: unwinds whatever the run was waiting on."""

    def __init__(self, name: str) -> None:
        super().__init__(f"cancelled by {name}")
        self.signal_name = name


@dataclass
class Cancellation:
    signal_name: str | None = None
    armed: bool = True
    """Only while armed does a signal interrupt the run; afterwards it is noted and ignored."""


@contextmanager
def on_signals() -> Iterator[Cancellation]:
    """Turn SIGINT/SIGTERM into `Cancelled` for the block (main thread only; elsewhere a no-op)."""
    state = Cancellation()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if state.signal_name is not None or not state.armed:
            state.signal_name = state.signal_name or signal.Signals(signum).name
            return
        state.signal_name = signal.Signals(signum).name
        state.armed = False
        raise Cancelled(state.signal_name)

    previous = {s: signal.signal(s, handler) for s in _SIGNALS}
    try:
        yield state
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    traffic_returned_to: str | None
    note: str


def cancel_rollout(platform: Platform, previous: Release | None, step: str | None) -> CancelOutcome:
    """Traffic back on `previous` if the run was at a step that may have moved it. Never raises."""
    if step not in _TRAFFIC_STEPS or previous is None:
        return CancelOutcome(None, f"traffic left as it was (the run was at step {step or 'start'})")
    try:
        platform.rollback(previous)
    except OrchestratorError as exc:
        return CancelOutcome(None, f"putting traffic back on {previous.version} failed ({exc}); recovery will")
    return CancelOutcome(previous.version, f"traffic back on {previous.version}")
