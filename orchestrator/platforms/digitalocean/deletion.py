"""Deleting an App Platform app by id or name, as app_action's delete does, and idempotently.

The app this config deploys (its `do_app_id`, or the app its repository spec names) is never
deleted this way: a deleted production app takes every release, and every known-good state to
return to, with it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.platforms.base import DeletedApp

from .api import AppsApi, NotFoundError
from .previews import find_app

__all__ = ["delete_named_app"]


def delete_named_app(
    api: AppsApi,
    app_id: str | None,
    app_name: str | None,
    *,
    production_id: str,
    production_name: str | None,
    before_delete: Callable[[DeletedApp], None] | None = None,
) -> DeletedApp | None:
    """Delete the app with `app_id` (else the one named `app_name`). None when none exists.
    `before_delete` sees the app found, after the production check and before the DELETE.

    A DELETE is safe to repeat: a 404 on it after the app was found means it is gone (an earlier
    attempt whose answer was lost). Raises ConfigError for production's own app, DeployError."""
    app = _get(api, app_id) if app_id is not None else find_app(api, str(app_name))
    if app is None:
        return None
    found = DeletedApp(id=str(app.get("id")), name=str((app.get("spec") or {}).get("name") or ""))
    if found.id == production_id or (production_name is not None and found.name == production_name):
        raise ConfigError(
            f"{'app-id' if app_id is not None else 'app-name'}: {found.name or found.id} is the app this config "
            "deploys; mode delete removes other apps (previews, review apps) and never production, "
            "whose releases are what a rollback returns to. Delete it in the DigitalOcean control panel."
        )
    if before_delete is not None:
        before_delete(found)
    # A 404 on the DELETE of an app just found: an earlier attempt, whose answer was lost, removed it.
    with suppress(NotFoundError):
        api.read("delete app", api.apps.delete, found.id)
    return found


def _get(api: AppsApi, app_id: str) -> dict[str, Any] | None:
    try:
        body = api.read("get app", api.apps.get, app_id)
    except NotFoundError:
        return None
    return dict((body or {}).get("app") or {}) or None
