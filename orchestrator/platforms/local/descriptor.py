"""The `local` platform as the registry sees it: config checks, lock key, capabilities, factory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.contract import DeployConfig, DeploymentConfig
from orchestrator.platforms.base import PinsArtifacts, Previews, Retirement, StickyRouter, TrafficMeter, TrafficRouter
from orchestrator.platforms.local.release_paths import release_path_problems
from orchestrator.platforms.registry import PlatformContext, PlatformDescriptor, Target

if TYPE_CHECKING:
    from orchestrator.platforms.local.platform import LocalPlatform

__all__ = ["DESCRIPTOR"]


def _problems(document: Mapping[str, Any], workspace: Path) -> Iterable[str]:
    local = document["deployment_config"].get("local")
    if local is None:
        yield (
            "deployment_config.local: required when platform is local; "
            "add local: {command: [...], listen: '127.0.0.1:8080'}"
        )
        return
    yield from release_path_problems(local, workspace, runs_from="captured")


def _lock_key(deployment: DeploymentConfig) -> str:
    return f"local/{deployment.local.listen if deployment.local else ''}"


def _create(config: DeployConfig, context: PlatformContext, target: Target) -> LocalPlatform:
    from orchestrator.platforms.local.platform import LocalPlatform
    from orchestrator.platforms.local.targets import config_for, state_dir_of

    local = config.deployment.local
    assert local is not None, "checked by the config (deployment_config.local)"
    workspace = Path(context.workspace)
    # Releases get the environment they run in, less the orchestrator's own secrets: the app may
    # need its database DSN, but never the agentbench, platform or GitHub tokens.
    withheld = frozenset(config.secret_env_vars()) - {config.credentials.db_connection_env_var}
    # A preview never captures production's state directory into its release files.
    leave_out = (state_dir_of(local, workspace),) if target.is_preview else ()
    return LocalPlatform(
        config_for(local, workspace, target), workspace, withheld=withheld, leave_out=leave_out, target=target
    )


DESCRIPTOR = PlatformDescriptor(
    name="local",
    capabilities=frozenset({TrafficRouter, StickyRouter, TrafficMeter, Retirement, Previews, PinsArtifacts}),
    create=_create,
    config_problems=_problems,
    lock_key=_lock_key,
)
