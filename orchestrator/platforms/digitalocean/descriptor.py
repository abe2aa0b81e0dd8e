"""The `digitalocean` platform as the registry sees it. Imports no SDK: pydo comes with the adapter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.artifacts import component_image_vars
from orchestrator.contract import DeployConfig, DeploymentConfig
from orchestrator.errors import ConfigError
from orchestrator.platforms.base import DeletesApps, NativeRollback, PinsArtifacts, Platform, Previews
from orchestrator.platforms.registry import PlatformContext, PlatformDescriptor, Target
from orchestrator.redaction import Secret

__all__ = ["CA_BUNDLE_ENV", "DESCRIPTOR", "ENDPOINT_ENV"]

ENDPOINT_ENV = "DIGITALOCEAN_API_URL"
CA_BUNDLE_ENV = "DIGITALOCEAN_CA_BUNDLE"


def _problems(document: Mapping[str, Any], workspace: Path) -> Iterable[str]:
    # With a spec from the repository, its name finds the app, or the first deploy creates it.
    if "do_app_id" not in document["deployment_config"] and "app_spec" not in document["artifacts"]:
        yield (
            "deployment_config.do_app_id: required when platform is digitalocean; "
            "add the App Platform app id (doctl apps list)"
        )


def _lock_key(deployment: DeploymentConfig) -> str:
    return f"digitalocean/{deployment.do_app_id or 'app-spec'}"


def _create(config: DeployConfig, context: PlatformContext, target: Target) -> Platform:
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
    from orchestrator.platforms.digitalocean.preview_target import DigitalOceanPreview
    from orchestrator.platforms.digitalocean.spec_file import load_app_spec

    deadline = config.deployment.do_deploy_timeout_seconds or DEFAULT_DEADLINE_SECONDS
    spec_path = config.artifacts.app_spec
    app_spec = (
        load_app_spec(Path(context.workspace) / spec_path, context.env, shown=spec_path.as_posix())
        if spec_path is not None
        else None
    )
    production = DigitalOceanPlatform(
        config.deployment,
        config.health_check,
        Secret(value.strip(), name=var),
        endpoint=context.env.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT,
        verify=context.env.get(CA_BUNDLE_ENV) or True,
        deadline_seconds=float(deadline),
        component_images=component_image_vars(context.env),
        app_spec=app_spec,
        preview_branch=context.env.get("GITHUB_HEAD_REF") or None,
    )
    if target.pr_number is None or target.repository is None:
        return production
    return DigitalOceanPreview(production, target.pr_number, target.repository)


DESCRIPTOR = PlatformDescriptor(
    name="digitalocean",
    capabilities=frozenset({DeletesApps, NativeRollback, PinsArtifacts, Previews}),
    create=_create,
    config_problems=_problems,
    lock_key=_lock_key,
    builds_from_source=True,
)
