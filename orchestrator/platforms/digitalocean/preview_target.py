"""A pull request's preview on App Platform: the same platform on another target (its own app).

Production's adapter deploys the preview app (production's spec renamed, domains and alerts
stripped, see `previews.py`); this target answers the core protocol for it, and removes it.
"""

from __future__ import annotations

from orchestrator.errors import DeployError
from orchestrator.platforms.base import Release

from .adapter import DigitalOceanPlatform
from .api import PLATFORM
from .preview_spec import preview_name
from .previews import find_app

__all__ = ["DigitalOceanPreview"]


class DigitalOceanPreview:
    name = "digitalocean"

    def __init__(self, production: DigitalOceanPlatform, pr_number: int, repository: str) -> None:
        self._production = production
        self._pr_number = pr_number
        self._repository = repository
        self._app_name = preview_name(repository, pr_number)

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
        """Create or update the preview app with `version` and return once it is live. Idempotent."""
        return self._production.create_preview(self._pr_number, self._repository, image, version)

    def rollback(self, to: Release) -> None:
        raise DeployError(
            "a preview keeps one release; push to the pull request to change it",
            platform=PLATFORM,
            operation="rollback",
        )

    def remove(self) -> bool:
        """Delete the preview app (under either name). Idempotent: False if none existed."""
        return self._production.delete_preview(self._pr_number, self._repository)
