"""Preview apps by name: find one, create one from a spec, delete one. Acts on the API only.

`preview_spec.py` decides a preview's name and spec; the adapter deploys into a preview app exactly
as into production (a preview is the same platform on another target).
"""

from __future__ import annotations

from typing import Any

from .api import AppsApi, NotFoundError

__all__ = ["create_app", "delete_app", "find_app"]

_PAGE = 200


def find_app(api: AppsApi, name: str) -> dict[str, Any] | None:
    """The app whose spec is named `name`, or None."""
    page = 1
    while page <= 100:
        body = api.read("list apps", api.apps.list, page=page, per_page=_PAGE)
        apps = (body or {}).get("apps") or []
        for app in apps:
            if (app.get("spec") or {}).get("name") == name:
                return dict(app)
        if len(apps) < _PAGE or not (((body or {}).get("links") or {}).get("pages") or {}).get("next"):
            return None
        page += 1
    return None


def create_app(api: AppsApi, spec: dict[str, Any]) -> dict[str, Any]:
    """Create the app for `spec`; an ambiguous failure looks for it by name before sending again."""
    name = str(spec.get("name"))

    def send() -> dict[str, Any]:
        body = api.once("create preview app", api.apps.create, {"spec": spec})
        return dict((body or {}).get("app") or {})

    created: dict[str, Any] = api.create("create preview app", send, lambda: find_app(api, name))
    return created


def delete_app(api: AppsApi, name: str) -> bool:
    """Delete the app named `name`. Idempotent: True if it deleted one, False if none existed."""
    app = find_app(api, name)
    if app is None:
        return False
    try:
        api.read("delete app", api.apps.delete, str(app["id"]))
    except NotFoundError:
        return False
    return True
