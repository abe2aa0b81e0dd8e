"""Pure edits of an App Platform app spec: the plan of a deploy, computed before any call.

The version label travels in the spec as the run-time env var `DEPLOY_ORCHESTRATOR_VERSION` on
the deployed service. That is how `live()` reads it back from any deployment (App Platform keeps
each deployment's full spec), and the running container can report it too.
"""

from __future__ import annotations

import copy
import math
from typing import Any
from urllib.parse import urlsplit

from orchestrator.contract import HealthCheckConfig
from orchestrator.errors import ConfigError

from .image import ImageSource

__all__ = [
    "VERSION_ENV",
    "health_check_block",
    "image_of",
    "select_component",
    "version_of",
    "with_release",
]

VERSION_ENV = "DEPLOY_ORCHESTRATOR_VERSION"

# A component has exactly one source; an image replaces whichever git source it had.
_SOURCE_KEYS = ("git", "github", "gitlab", "bitbucket", "image")
_BUILD_KEYS = ("dockerfile_path", "build_command", "source_dir", "environment_slug")
# What we write into an `image` block; everything else in it (`registry_credentials`, encrypted
# by App Platform on first submission and needed on every later one, `deploy_on_push`, fields
# newer than this code) is carried through exactly as the app has it.
_IMAGE_OWNED = ("registry_type", "registry", "repository", "tag", "digest")

# App Platform's limits for a service health check (REFERENCE.md).
_TIMEOUT_RANGE = (1, 120)
_PERIOD_RANGE = (1, 300)
_FAILURE_RANGE = (1, 50)


def select_component(spec: dict[str, Any], wanted: str | None) -> str:
    """The service whose image we replace: `wanted`, or the app's only service.

    Raises ConfigError naming `deployment_config.do_component` and the services that exist.
    """
    names = [str(s.get("name")) for s in spec.get("services") or []]
    if wanted is not None:
        if wanted not in names:
            raise ConfigError(
                f"deployment_config.do_component: the app has no service {wanted!r} "
                f"(services: {', '.join(names) or 'none'})"
            )
        return wanted
    if len(names) != 1:
        raise ConfigError(
            "deployment_config.do_component: the app has "
            f"{len(names)} services ({', '.join(names) or 'none'}); name the one to deploy"
        )
    return names[0]


def health_check_block(health: HealthCheckConfig, existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """App Platform's `health_check` from ours, clamped to its limits; unrelated fields (port) kept.

    App Platform accepts any 2xx/3xx as healthy, so `expected_status` cannot travel here; our own
    verification checks the exact status on `live_url` afterwards.
    """
    block = dict(existing or {})
    path = urlsplit(health.endpoint).path or "/"
    block.update(
        http_path=path,
        timeout_seconds=_clamp(math.ceil(health.timeout_seconds), _TIMEOUT_RANGE),
        period_seconds=_clamp(math.ceil(health.interval_seconds), _PERIOD_RANGE),
        failure_threshold=_clamp(health.retries, _FAILURE_RANGE),
        success_threshold=1,
    )
    block.setdefault("initial_delay_seconds", 0)
    return block


def with_release(
    spec: dict[str, Any],
    component: str,
    version: str,
    image: ImageSource | None,
    health: HealthCheckConfig | None,
) -> dict[str, Any]:
    """A copy of `spec` whose `component` runs `image` (None: keep the current one) labelled `version`."""
    new = copy.deepcopy(spec)
    service = _service(new, component)
    if image is not None:
        current = service.get("image")
        kept = {k: v for k, v in current.items() if k not in _IMAGE_OWNED} if isinstance(current, dict) else {}
        for key in (*_SOURCE_KEYS, *_BUILD_KEYS):
            service.pop(key, None)
        service["image"] = {**kept, **image.to_spec()}
    envs = [e for e in service.get("envs") or [] if e.get("key") != VERSION_ENV]
    envs.append({"key": VERSION_ENV, "value": version, "scope": "RUN_TIME", "type": "GENERAL"})
    service["envs"] = envs
    if health is not None:
        service["health_check"] = health_check_block(health, service.get("health_check"))
    return new


def version_of(spec: dict[str, Any] | None, component: str | None) -> str | None:
    """The version label a spec carries on `component` (any service when None), or None."""
    for service in (spec or {}).get("services") or []:
        if component is not None and service.get("name") != component:
            continue
        for env in service.get("envs") or []:
            if env.get("key") == VERSION_ENV and env.get("value"):
                return str(env["value"])
    return None


def image_of(spec: dict[str, Any] | None, component: str | None) -> ImageSource | None:
    for service in (spec or {}).get("services") or []:
        if component is not None and service.get("name") != component:
            continue
        if service.get("image"):
            return ImageSource.from_spec(service["image"])
    return None


def _service(spec: dict[str, Any], component: str) -> dict[str, Any]:
    for service in spec.get("services") or []:
        if service.get("name") == component:
            found: dict[str, Any] = service
            return found
    raise ConfigError(f"deployment_config.do_component: the app has no service {component!r}")


def _clamp(value: int, bounds: tuple[int, int]) -> int:
    low, high = bounds
    return max(low, min(high, value))
