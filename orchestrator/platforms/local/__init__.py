"""The `local` platform: release processes behind a per-request HTTP proxy, kept by a supervisor.

Modules: `state` (what is kept on disk), `routing` (the weighted table), `wire`, `client`,
`exchange`, `upstream` and `proxy` (the HTTP/1.1 proxy: framing, client connections, one request's
trip, releases and their replicas), `process` (replica processes),
`supervisor` (what the daemon does) and `daemon` (running it detached), `control` (talking to it,
starting and stopping it), `platform` (the `Platform` adapter).
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.contract import DeployConfig
from orchestrator.errors import ConfigError
from orchestrator.platforms.base import Platform, PlatformContext, register
from orchestrator.platforms.local.control import (
    ReleaseStatus,
    ReplicaStatus,
    SupervisorStatus,
    read_status,
    readopt,
    stop_supervisor,
)
from orchestrator.platforms.local.platform import LocalPlatform, state_dir_of, supervisor_status, supervisor_stop

__all__ = [
    "LocalPlatform",
    "ReleaseStatus",
    "ReplicaStatus",
    "SupervisorStatus",
    "create",
    "read_status",
    "readopt",
    "state_dir_of",
    "stop_supervisor",
    "supervisor_status",
    "supervisor_stop",
]


def create(config: DeployConfig, context: PlatformContext) -> Platform:
    """The registry's factory: a `LocalPlatform` for `deployment_config.local`."""
    local = config.deployment.local
    if local is None:
        raise ConfigError("deployment_config.local: required when deployment_config.platform is local")
    # Releases get the environment they run in, less the orchestrator's own secrets: the app may
    # need its database DSN, but never the agentbench, platform or GitHub tokens.
    withheld = frozenset(config.secret_env_vars()) - {config.credentials.db_connection_env_var}
    return LocalPlatform(local, Path(context.workspace), withheld=withheld)


register("local", create)
