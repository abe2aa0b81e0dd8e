"""Where the orchestrator's own log lines go when it runs as a command: stderr, redacted.

The CLI and the demo both start here, so a run and the walkthrough print the same lines and the
same secrets stay masked. Library callers that configure logging themselves never call it.
"""

from __future__ import annotations

import logging
import sys

from orchestrator.redaction import install_filter

__all__ = ["log_to_stderr"]


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time of the line, not at setup: a live status line
    (rich, see progress.py) swaps stderr for a proxy that prints above it, and lines must go there."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def log_to_stderr() -> None:
    """Send the `orchestrator` loggers to stderr at INFO through the secret filter; a no-op when
    a handler is already installed (a second call, or a caller that set one up)."""
    root = logging.getLogger("orchestrator")
    if root.handlers:
        return
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    install_filter(handler)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False
