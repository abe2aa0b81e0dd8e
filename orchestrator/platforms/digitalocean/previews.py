"""App Platform apps by name: find, create and delete one, and a pull request's preview app.

Knows nothing of the adapter: `preview_target.py` deploys a preview, `first_deploy.py` production's
first app, both through these.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .api import AppsApi, NotFoundError
from .preview_spec import legacy_preview_name, preview_name

__all__ = ["NEW_APP", "create_app", "delete_app", "delete_preview", "find_app"]

# Every deployment of an app we have just created is new.
NEW_APP = datetime.min.replace(tzinfo=UTC)


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
