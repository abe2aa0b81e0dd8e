"""The `local` platform: release processes behind a per-request HTTP proxy, kept by a supervisor.

Modules: `descriptor` (what the registry knows of it) and `release_paths` (the checks on the
`local` block's paths, which `hosts` makes too), `targets` (production and per-PR preview
state directories), `state` (what is kept on disk), `routing` (the weighted table), `wire`,
`client`, `exchange`, `upstream` and `proxy` (the HTTP/1.1 proxy: framing, client connections, one
request's trip, releases and their replicas), `process` (replica processes), `supervisor` (what the
daemon does) and `daemon` (running it detached), `control` (talking to it, starting and stopping
it), `platform` (the adapter) and `release_snapshots` (which files each release runs from).
"""

from __future__ import annotations

from orchestrator.platforms.local.control import (
    ReleaseStatus,
    ReplicaStatus,
    SupervisorStatus,
    read_status,
    readopt,
    stop_supervisor,
)
from orchestrator.platforms.local.platform import LocalPlatform, supervisor_status, supervisor_stop
from orchestrator.platforms.local.targets import state_dir_of

__all__ = [
    "LocalPlatform",
    "ReleaseStatus",
    "ReplicaStatus",
    "SupervisorStatus",
    "read_status",
    "readopt",
    "state_dir_of",
    "stop_supervisor",
    "supervisor_status",
    "supervisor_stop",
]
