"""The first deploy of an app spec from the repository: App Platform creates the app and deploys it.

Like `previews.py`, this drives the adapter's own steps (its spec edits, its wait under the
deadline, held to the validated commit) on an app that does not exist yet.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from orchestrator.errors import DeployError
from orchestrator.platforms.base import Release

from .api import PLATFORM
from .deployments import EPOCH
from .image import ImageSource
from .previews import create_app
from .region import check_region
from .source_commit import BuiltOtherCommit
from .spec import select_component, with_component_images, with_release
from .spec_update import find_new_deployment

if TYPE_CHECKING:
    from .adapter import DigitalOceanPlatform

__all__ = ["create_from_spec"]

log = logging.getLogger(__name__)


def create_from_spec(
    platform: DigitalOceanPlatform, version: str, source: ImageSource | None, image: str | None
) -> Release:
    """Create the app the repository's spec names, with `version` (`image`) on its component, and
    wait until it is live. Raises DeployError (nothing left serving a wrong commit) or ConfigError."""
    assert platform._app_spec is not None  # only reached when the spec names an app that does not exist
    base = with_component_images(platform._app_spec, platform._component_images)
    component = select_component(base, platform._component)
    spec, built = platform._from_git(with_release(base, component, version, source, platform._health), version)
    if platform._region:
        check_region({"spec": spec}, platform._region)
    log.info("app %s does not exist yet: creating it from the repository's spec", spec.get("name"))
    app = create_app(platform.api, spec, project_id=platform._project_id)
    platform.app_id = str(app["id"])
    deployment = app.get("pending_deployment") or app.get("in_progress_deployment") or {}
    if not deployment.get("id"):
        deployment = find_new_deployment(platform.api, platform.app_id, version, component, EPOCH) or {}
    if not deployment.get("id"):
        raise DeployError(
            f"create app: App Platform created app {platform.app_id} but no deployment for it",
            platform=PLATFORM,
            operation="create app",
        )
    try:
        release = platform._await(platform.app_id, deployment, f"first deploy of {version}", logs=True, built=built)
    except BuiltOtherCommit as live:
        raise DeployError(
            f"first deploy of {version}: {live.reason}, and it went live; there is no earlier release to return "
            "to, so it keeps serving: deploy the validated commit again",
            platform=PLATFORM,
            operation="wait for deployment",
        ) from live
    return Release(release.version, image=image or release.image, ref=release.ref)
