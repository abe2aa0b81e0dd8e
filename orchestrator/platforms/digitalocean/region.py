"""`deployment_config.do_region` held against the app it names, before anything is touched.

App Platform apps live in one region (the spec's `region`, e.g. `ams`, spanning data centers like
`ams3`). A config naming another region is pointing at the wrong app, or expects a move that App
Platform does not do on a deploy; either way it is refused, not silently ignored.
"""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.errors import ConfigError

__all__ = ["app_region", "check_region"]

log = logging.getLogger(__name__)


def app_region(app: dict[str, Any]) -> str | None:
    """The app's region slug (`ams`), from its spec or its region object."""
    region = (app.get("spec") or {}).get("region") or (app.get("region") or {}).get("slug")
    return str(region).lower() if region else None


def check_region(app: dict[str, Any], wanted: str) -> None:
    """Raise ConfigError when the app is not in `wanted` (a region slug or one of its data centers)."""
    actual = app_region(app)
    if actual is None:
        log.warning("app %s names no region; deployment_config.do_region %s is not checked", app.get("id"), wanted)
        return
    data_centers = {str(dc).lower() for dc in (app.get("region") or {}).get("data_centers") or []}
    if wanted.strip().lower() in {actual} | data_centers:
        return
    name = (app.get("spec") or {}).get("name") or app.get("id")
    raise ConfigError(
        f"deployment_config.do_region: app {name} ({app.get('id')}) runs in region {actual!r}, not {wanted!r}; "
        f"set do_region to {actual!r}, or point do_app_id at the app in {wanted!r} "
        "(App Platform does not move an app between regions on a deploy)"
    )
