"""Where the orchestrator's own log lines go when it runs as a command: stderr, redacted.

The CLI and the demo both start here, so a run and the walkthrough print the same lines and the
same secrets stay masked. Library callers that configure logging themselves never call it.
"""

from __future__ import annotations

import logging
import sys

from orchestrator.redaction import install_filter

__all__ = ["log_to_stderr"]


def log_to_stderr() -> None:
    """Send the `orchestrator` loggers to stderr at INFO through the secret filter; a no-op when
    a handler is already installed (a second call, or a caller that set one up)."""
    root = logging.getLogger("orchestrator")
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    install_filter(handler)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False
