"""Per-PR preview apps on App Platform: create or update one, deploy the PR's image, delete it.

`preview.py` decides the preview's name and spec; this module acts on them. A preview app is
deployed the way production is, so `create_preview` drives the adapter's own deploy steps (join a
deployment under way, update the spec, wait under the deadline) on the preview app rather than
repeating them; that is why it takes the `DigitalOceanPlatform` and calls its internals.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ConfigError, DeployError
from orchestrator.platforms.base import Release

from .api import PLATFORM, AppsApi, NotFoundError
from .image import parse_image
from .preview_spec import legacy_preview_name, preview_name, preview_spec
from .source_commit import BuiltOtherCommit
from .spec import commits_of, select_component, version_of, with_git_sources, with_release
from .spec_file import with_sealed_values
from .spec_update import find_new_deployment, unfinished, update_spec

if TYPE_CHECKING:
    from .adapter import DigitalOceanPlatform

__all__ = ["create_app", "create_preview", "delete_app", "delete_preview", "find_app"]

# Every deployment of an app we have just created is new.
_NEW_APP = datetime.min.replace(tzinfo=UTC)


def create_preview(
    platform: DigitalOceanPlatform, pr_number: int, repo: str, image: str | None, version: str
) -> Release:
    """Create or update the PR's preview app (the repository's spec when `artifacts.app_spec` names
    one, else production's; renamed, without domains and alerts), deploy `image` as `version`, and
    return it with its live URL in `Release.url`. Git-source components build the pull request's
    branch, held to its validated head commit."""
    api = platform.api
    source = parse_image(image) if image is not None else None
    name = preview_name(repo, pr_number)
    base = preview_spec(_preview_base(platform), name)
    component = select_component(base, platform._component)
    spec, built = platform._from_git(with_release(base, component, version, source, platform._health), version)
    if built:
        if platform.preview_branch is None:
            raise ConfigError(
                f"preview {name}: {', '.join(built)} build from git, and a preview builds the pull request's "
                "branch; GITHUB_HEAD_REF is not set (run on a pull_request event)"
            )
        spec = with_git_sources(spec, platform.preview_branch)
    elif image is None:
        raise ConfigError(
            "image: App Platform previews need an image; pass the image input or set artifacts.docker_image"
        )
    app = _find_app(api, name)
    operation = f"preview {name} ({version})"
    if app is not None:
        active = app.get("active_deployment") or {}
        same_commits = all(commits_of(active).get(c) == platform._source_commit for c in built)
        if version_of(active.get("spec"), component) == version and app.get("live_url") and same_commits:
            return platform._release(active, url=str(app["live_url"]))
        deployment = unfinished(app, version, component) or update_spec(
            api, app, spec, version, component, refresh_sources=bool(built)
        )
    else:

        def send() -> dict[str, Any]:
            body = api.once("create preview app", api.apps.create, {"spec": spec})
            return dict((body or {}).get("app") or {})

        app = api.create("create preview app", send, lambda: _find_app(api, name))
        deployment = app.get("pending_deployment") or app.get("in_progress_deployment") or {}
        if not deployment.get("id"):
            deployment = find_new_deployment(api, str(app["id"]), version, component, _NEW_APP) or {}
        if not deployment.get("id"):
            raise DeployError(
                f"{operation}: App Platform created app {app.get('id')} but no deployment for it",
                platform=PLATFORM,
                operation="create preview app",
            )
    app_id = str(app["id"])
    try:
        release = platform._await(app_id, deployment, operation, built=built)
    except BuiltOtherCommit as live:
        # A preview has no earlier release worth returning to: it must not serve unvalidated code.
        delete_app(api, name)
        raise DeployError(
            f"{operation}: {live.reason}; the preview app was deleted", platform=PLATFORM, operation="preview"
        ) from live
    url = platform._app(app_id).get("live_url")
    if not url:
        raise DeployError(
            f"{operation}: deployed, but App Platform gave the app no live_url",
            platform=PLATFORM,
            operation="get app",
        )
    return Release(release.version, url=str(url), image=release.image, ref=release.ref)


def _preview_base(platform: DigitalOceanPlatform) -> dict[str, Any]:
    """The spec a preview starts from: the repository's (the pull request's own file, gated like
    production's), with production's encrypted values, or else production's live spec."""
    production = platform._app(platform.app_id).get("spec") or {} if platform._production_id() else {}
    if platform._app_spec is not None:
        return with_sealed_values(platform._app_spec, production)
    return production


def delete_preview(api: AppsApi, pr_number: int, repo: str) -> bool:
    """Delete the PR's preview app, also one named the way releases before issue 15 named it.
    Idempotent: True if it deleted one, False if none existed."""
    deleted = False
    for name in dict.fromkeys((preview_name(repo, pr_number), legacy_preview_name(repo, pr_number))):
        deleted = delete_app(api, name) or deleted
    return deleted


def delete_app(api: AppsApi, name: str) -> bool:
    """Delete the app named `name`. Idempotent: True if it deleted one, False if none existed."""
    app = _find_app(api, name)
    if app is None:
        return False
    try:
        api.read("delete app", api.apps.delete, str(app["id"]))
    except NotFoundError:
        return False
    return True


def create_app(api: AppsApi, spec: dict[str, Any], *, project_id: str | None = None) -> dict[str, Any]:
    """Create the app for `spec` (in `project_id`); an ambiguous failure looks for it by name first."""
    name = str(spec.get("name"))
    request: dict[str, Any] = {"spec": spec, **({"project_id": project_id} if project_id else {})}

    def send() -> dict[str, Any]:
        body = api.once("create app", api.apps.create, request)
        return dict((body or {}).get("app") or {})

    created: dict[str, Any] = api.create("create app", send, lambda: find_app(api, name))
    return created


def find_app(api: AppsApi, name: str) -> dict[str, Any] | None:
    """The app whose spec is named `name`, or None."""
    return _find_app(api, name)


def _find_app(api: AppsApi, name: str) -> dict[str, Any] | None:
    page = 1
    while page <= 100:
        body = api.read("list apps", api.apps.list, page=page, per_page=200)
        apps = (body or {}).get("apps") or []
        for app in apps:
            if (app.get("spec") or {}).get("name") == name:
                return dict(app)
        if len(apps) < 200 or not (((body or {}).get("links") or {}).get("pages") or {}).get("next"):
            return None
        page += 1
    return None
