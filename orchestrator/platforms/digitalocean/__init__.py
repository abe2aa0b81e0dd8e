"""DigitalOcean App Platform through the official `pydo` client (issue 8).

Importing this package registers the `digitalocean` platform factory. The factory reads the API
token from the env var named by `credentials.do_api_token_env_var`; `DIGITALOCEAN_API_URL` and
`DIGITALOCEAN_CA_BUNDLE` point it elsewhere (the tests' simulator, a corporate proxy's CA).
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.artifacts import component_image_vars
from orchestrator.contract import DeployConfig
from orchestrator.errors import ConfigError
from orchestrator.platforms.base import PlatformContext, register
from orchestrator.redaction import Secret

from .adapter import DEFAULT_DEADLINE_SECONDS, DEFAULT_ENDPOINT, DigitalOceanPlatform
from .api import RetryPolicy
from .image import ImageSource, parse_image
from .preview_spec import preview_name
from .spec import VERSION_ENV
from .spec_file import load_app_spec
from .watch import Backoff

__all__ = [
    "VERSION_ENV",
    "Backoff",
    "DigitalOceanPlatform",
    "ImageSource",
    "RetryPolicy",
    "factory",
    "parse_image",
    "preview_name",
]

ENDPOINT_ENV = "DIGITALOCEAN_API_URL"
CA_BUNDLE_ENV = "DIGITALOCEAN_CA_BUNDLE"


def factory(cfg: DeployConfig, ctx: PlatformContext) -> DigitalOceanPlatform:
    """Build the adapter from the config and the run's environment. Raises ConfigError."""
    var = cfg.credentials.do_api_token_env_var
    value = ctx.env.get(var, "")
    if not value.strip():
        raise ConfigError(
            f"credentials.do_api_token_env_var: the environment variable {var} is not set or empty; "
            "pass a DigitalOcean API token to it (e.g. `env: {" + var + ": ${{ secrets.DIGITALOCEAN_TOKEN }}}`)"
        )
    # Not in the config schema yet: a deploy deadline of its own, when the config grows one.
    deadline = cfg.deployment.do_deploy_timeout_seconds or DEFAULT_DEADLINE_SECONDS
    spec_path = cfg.artifacts.app_spec
    app_spec = (
        load_app_spec(Path(ctx.workspace) / spec_path, ctx.env, shown=spec_path.as_posix())
        if spec_path is not None
        else None
    )
    return DigitalOceanPlatform(
        cfg.deployment,
        cfg.health_check,
        Secret(value.strip(), name=var),
        endpoint=ctx.env.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT,
        verify=ctx.env.get(CA_BUNDLE_ENV) or True,
        deadline_seconds=float(deadline),
        component_images=component_image_vars(ctx.env),
        app_spec=app_spec,
        preview_branch=ctx.env.get("GITHUB_HEAD_REF") or None,
    )


register("digitalocean", factory)
