"""A pull request's preview on App Platform: the same platform on another target (its own app).

The preview app starts from the repository's spec when `artifacts.app_spec` names one, else from
production's (renamed, domains and alerts stripped: `preview_spec.py`). Production's adapter
builds the release into it and waits for it under its deadline, through its public methods; this
target answers the core protocol for the preview app, and removes it.
"""

from __future__ import annotations

from typing import Any

from orchestrator.artifacts import ArtifactDigests
from orchestrator.errors import ConfigError, DeployError
from orchestrator.platforms.base import Release

from .adapter import DigitalOceanPlatform
from .api import PLATFORM
from .image import parse_image
from .preview_spec import preview_name, preview_spec
from .previews import NEW_APP, delete_app, delete_preview, find_app
from .source_commit import BuiltOtherCommit
from .spec import version_of, with_git_sources
from .spec_update import find_new_deployment, unfinished, update_spec

__all__ = ["DigitalOceanPreview"]


class DigitalOceanPreview:
    name = "digitalocean"

    def __init__(self, production: DigitalOceanPlatform, pr_number: int, repository: str) -> None:
        self._production = production
        self._pr_number = pr_number
        self._repository = repository
        self._app_name = preview_name(repository, pr_number)

    def pin_artifacts(self, version: str, digests: ArtifactDigests) -> None:
        """The gates approved `digests` (the spec file, component images, the pull request's commit):
        the preview deploys exactly those, as production would."""
        self._production.pin_artifacts(version, digests)

    def live(self) -> Release | None:
        app = find_app(self._production.api, self._app_name)
        active = (app or {}).get("active_deployment") or {}
        return self._production.release_of(active) if active.get("id") else None

    def live_url(self) -> str:
        app = find_app(self._production.api, self._app_name)
        url = (app or {}).get("live_url")
        if not url:
            raise DeployError(f"preview app {self._app_name} has no live_url", platform=PLATFORM, operation="get app")
        return str(url)

    def releases(self) -> list[Release]:
        live = self.live()
        return [live] if live is not None else []

    def start(self, version: str, image: str | None) -> Release:
        """Create or update the preview app with `version` and return once it is live, with its URL
        in `Release.url`. Idempotent. Git-source components build the pull request's branch, held to
        its validated head commit."""
        production, name = self._production, self._app_name
        api = production.api
        source = parse_image(image) if image is not None else None
        spec, component, built = production.release_spec(preview_spec(production.preview_base(), name), version, source)
        if built:
            if production.preview_branch is None:
                raise ConfigError(
                    f"preview {name}: {', '.join(built)} build from git, and a preview builds the pull request's "
                    "branch; GITHUB_HEAD_REF is not set (run on a pull_request event)"
                )
            spec = with_git_sources(spec, production.preview_branch)
        elif image is None:
            raise ConfigError(
                "image: App Platform previews need an image; pass the image input or set artifacts.docker_image"
            )
        app = find_app(api, name)
        operation = f"preview {name} ({version})"
        if app is not None:
            active = app.get("active_deployment") or {}
            same = production.built_from_validated_commit(active, built)
            if version_of(active.get("spec"), component) == version and app.get("live_url") and same:
                return production.release_of(active, url=str(app["live_url"]))
            deployment = unfinished(app, version, component) or update_spec(
                api, app, spec, version, component, refresh_sources=bool(built)
            )
        else:
            app, deployment = self._create(spec, version, component, operation)
        app_id = str(app["id"])
        try:
            release = production.await_deployment(app_id, deployment, operation, built)
        except BuiltOtherCommit as live:
            # A preview has no earlier release worth returning to: it must not serve unvalidated code.
            delete_app(api, name)
            raise DeployError(
                f"{operation}: {live.reason}; the preview app was deleted", platform=PLATFORM, operation="preview"
            ) from live
        url = production.app(app_id).get("live_url")
        if not url:
            raise DeployError(
                f"{operation}: deployed, but App Platform gave the app no live_url",
                platform=PLATFORM,
                operation="get app",
            )
        return Release(release.version, url=str(url), image=release.image, ref=release.ref)

    def _create(
        self, spec: dict[str, Any], version: str, component: str, operation: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Create the preview app; return it and its first deployment."""
        api, name = self._production.api, self._app_name

        def send() -> dict[str, Any]:
            body = api.once("create preview app", api.apps.create, {"spec": spec})
            return dict((body or {}).get("app") or {})

        app: dict[str, Any] = api.create("create preview app", send, lambda: find_app(api, name))
        deployment = app.get("pending_deployment") or app.get("in_progress_deployment") or {}
        if not deployment.get("id"):
            deployment = find_new_deployment(api, str(app["id"]), version, component, NEW_APP) or {}
        if not deployment.get("id"):
            raise DeployError(
                f"{operation}: App Platform created app {app.get('id')} but no deployment for it",
                platform=PLATFORM,
                operation="create preview app",
            )
        return app, deployment

    def rollback(self, to: Release) -> None:
        raise DeployError(
            "a preview keeps one release; push to the pull request to change it",
            platform=PLATFORM,
            operation="rollback",
        )

    def remove(self) -> bool:
        """Delete the preview app (under either name). Idempotent: False if none existed."""
        return delete_preview(self._production.api, self._pr_number, self._repository)
