"""Pure edits of an App Platform app spec: the plan of a deploy, computed before any call.

The version label travels in the spec as the run-time env var `DEPLOY_ORCHESTRATOR_VERSION` on
the deployed service. That is how `live()` reads it back from any deployment (App Platform keeps
each deployment's full spec), and the running container can report it too.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from orchestrator.contract import HealthCheckConfig
from orchestrator.errors import ConfigError

from .image import ImageSource

__all__ = [
    "COMPONENT_KINDS",
    "VERSION_ENV",
    "commits_of",
    "component_env_name",
    "components",
    "git_sources",
    "health_check_block",
    "image_of",
    "images_of",
    "select_component",
    "serves_http",
    "version_of",
    "with_component_images",
    "with_git_sources",
    "with_release",
]

VERSION_ENV = "DEPLOY_ORCHESTRATOR_VERSION"

# A component has exactly one source; an image replaces whichever git source it had.
COMPONENT_KINDS = ("services", "workers", "jobs")
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


def components(spec: dict[str, Any] | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind, component) for every service, worker and job, in that order."""
    for kind in COMPONENT_KINDS:
        for component in (spec or {}).get(kind) or []:
            yield kind, component


def serves_http(spec: dict[str, Any] | None) -> bool:
    """Whether the app answers on a URL: it has a service or a static site (workers and jobs do not)."""
    return bool((spec or {}).get("services") or (spec or {}).get("static_sites"))


def select_component(spec: dict[str, Any], wanted: str | None) -> str:
    """The component whose image we replace and that carries the version label: `wanted` (a
    service, worker or job), or the app's only service, or its only component when it has no service.

    Raises ConfigError naming `deployment_config.do_component` and the components that exist.
    """
    found = [(kind, str(c.get("name"))) for kind, c in components(spec)]
    listed = ", ".join(f"{name} ({kind[:-1]})" for kind, name in found) or "none"
    if wanted is not None:
        if wanted not in {name for _, name in found}:
            raise ConfigError(
                f"deployment_config.do_component: the app has no service, worker or job {wanted!r} "
                f"(components: {listed})"
            )
        return wanted
    services = [name for kind, name in found if kind == "services"]
    if len(services) == 1:
        return services[0]
    if not services and len(found) == 1:
        return found[0][1]
    raise ConfigError(
        f"deployment_config.do_component: the app has {len(found)} components ({listed}); name the one to deploy"
    )


def with_component_images(spec: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `spec` whose image components take `IMAGE_DIGEST_<COMPONENT>` (or, failing that,
    `IMAGE_TAG_<COMPONENT>`) from `env`, as app_action does (`<COMPONENT>`: the name upper-cased,
    `-` as `_`). Registry and repository stay the spec's; every other image field is kept."""
    new = copy.deepcopy(spec)
    for _, component in components(new):
        image = component.get("image")
        if not isinstance(image, dict):
            continue
        key = component_env_name(str(component.get("name")))
        digest, tag = env.get(f"IMAGE_DIGEST_{key}", "").strip(), env.get(f"IMAGE_TAG_{key}", "").strip()
        if digest:
            image.pop("tag", None)
            image["digest"] = digest
        elif tag:
            image.pop("digest", None)
            image["tag"] = tag
    return new


def component_env_name(name: str) -> str:
    return name.upper().replace("-", "_")


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
    kind, service = _component(new, component)
    if image is not None:
        current = service.get("image")
        kept = {k: v for k, v in current.items() if k not in _IMAGE_OWNED} if isinstance(current, dict) else {}
        for key in (*_SOURCE_KEYS, *_BUILD_KEYS):
            service.pop(key, None)
        service["image"] = {**kept, **image.to_spec()}
    envs = [e for e in service.get("envs") or [] if e.get("key") != VERSION_ENV]
    envs.append({"key": VERSION_ENV, "value": version, "scope": "RUN_TIME", "type": "GENERAL"})
    service["envs"] = envs
    if health is not None and kind == "services":
        service["health_check"] = health_check_block(health, service.get("health_check"))
    return new


def version_of(spec: dict[str, Any] | None, component: str | None) -> str | None:
    """The version label a spec carries on `component` (any component when None), or None."""
    for _, service in components(spec):
        if component is not None and service.get("name") != component:
            continue
        for env in service.get("envs") or []:
            if env.get("key") == VERSION_ENV and env.get("value"):
                return str(env["value"])
    return None


def image_of(spec: dict[str, Any] | None, component: str | None) -> ImageSource | None:
    for _, service in components(spec):
        if component is not None and service.get("name") != component:
            continue
        if service.get("image"):
            return ImageSource.from_spec(service["image"])
    return None


def _component(spec: dict[str, Any], component: str) -> tuple[str, dict[str, Any]]:
    for kind, found in components(spec):
        if found.get("name") == component:
            return kind, found
    raise ConfigError(f"deployment_config.do_component: the app has no service, worker or job {component!r}")


def _clamp(value: int, bounds: tuple[int, int]) -> int:
    low, high = bounds
    return max(low, min(high, value))


def images_of(spec: dict[str, Any] | None) -> dict[str, tuple[Any, ...]]:
    """What each component pulls, for "is this exactly what is live already"."""
    owned = ("registry_type", "registry", "repository", "tag", "digest")
    return {str(c.get("name")): tuple((c.get("image") or {}).get(k) for k in owned) for _, c in components(spec)}


_GIT_SOURCES = ("github", "gitlab", "bitbucket", "git")


def git_sources(spec: dict[str, Any] | None) -> list[str]:
    """The components (services, workers, jobs) App Platform builds from a git source."""
    return [
        str(c.get("name"))
        for _, c in components(spec)
        if any(isinstance(c.get(key), dict) for key in _GIT_SOURCES) and not c.get("image")
    ]


def with_git_sources(spec: dict[str, Any], branch: str | None = None) -> dict[str, Any]:
    """A copy of `spec` whose git sources never deploy on push (App Platform would otherwise build
    every new commit, validated or not) and, given `branch`, build that branch (a preview: the pull
    request's). Components with an image are left as they are."""
    new = copy.deepcopy(spec)
    for _, component in components(new):
        for key in _GIT_SOURCES:
            source = component.get(key)
            if isinstance(source, dict) and not component.get("image"):
                if key != "git":  # App Platform's plain `git` source has no deploy_on_push
                    source["deploy_on_push"] = False
                if branch is not None:
                    source["branch"] = branch
    return new


def commits_of(deployment: dict[str, Any] | None) -> dict[str, str]:
    """Component name -> the commit App Platform built it from, as far as the deployment shows
    (it knows once the build step finished)."""
    return {
        str(c.get("name")): str(c["source_commit_hash"])
        for kind in COMPONENT_KINDS
        for c in (deployment or {}).get(kind) or []
        if c.get("source_commit_hash")
    }
