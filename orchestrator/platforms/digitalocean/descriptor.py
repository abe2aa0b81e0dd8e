"""The `digitalocean` platform as the registry sees it. Imports no SDK: pydo comes with the adapter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.contract import DeployConfig, DeploymentConfig
from orchestrator.errors import ConfigError
from orchestrator.platforms.base import NativeRollback, Previews
from orchestrator.platforms.registry import PlatformContext, PlatformDescriptor, Target
from orchestrator.redaction import Secret

if TYPE_CHECKING:
    from orchestrator.platforms.digitalocean.adapter import DigitalOceanPlatform

__all__ = ["CA_BUNDLE_ENV", "DESCRIPTOR", "ENDPOINT_ENV"]

ENDPOINT_ENV = "DIGITALOCEAN_API_URL"
CA_BUNDLE_ENV = "DIGITALOCEAN_CA_BUNDLE"


def _problems(deployment: Mapping[str, Any], workspace: Path) -> Iterable[str]:
    if "do_app_id" not in deployment:
        yield (
            "deployment_config.do_app_id: required when platform is digitalocean; "
            "add the App Platform app id (doctl apps list)"
        )


def _lock_key(deployment: DeploymentConfig) -> str:
    return f"digitalocean/{deployment.do_app_id}"


def _create(config: DeployConfig, context: PlatformContext, target: Target) -> DigitalOceanPlatform:
    """The adapter for `target`. Raises ConfigError when the API token is missing."""
    var = config.credentials.do_api_token_env_var
    value = context.env.get(var, "")
    if not value.strip():
        raise ConfigError(
            f"credentials.do_api_token_env_var: the environment variable {var} is not set or empty; "
            "pass a DigitalOcean API token to it (e.g. `env: {" + var + ": ${{ secrets.DIGITALOCEAN_TOKEN }}}`)"
        )
    from orchestrator.platforms.digitalocean.adapter import (
        DEFAULT_DEADLINE_SECONDS,
        DEFAULT_ENDPOINT,
        DigitalOceanPlatform,
    )

    deadline = config.deployment.do_deploy_timeout_seconds or DEFAULT_DEADLINE_SECONDS
    return DigitalOceanPlatform(
        config.deployment,
        config.health_check,
        Secret(value.strip(), name=var),
        endpoint=context.env.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT,
        verify=context.env.get(CA_BUNDLE_ENV) or True,
        deadline_seconds=float(deadline),
        target=target,
    )


DESCRIPTOR = PlatformDescriptor(
    name="digitalocean",
    capabilities=frozenset({NativeRollback, Previews}),
    create=_create,
    config_problems=_problems,
    lock_key=_lock_key,
)
