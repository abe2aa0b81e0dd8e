"""Git-source components are held to the validated commit, though App Platform builds a branch.

App Platform's git sources name a branch, never a commit: a push after validation changes what it
builds. Each deployment reports the commit every component was built from (`source_commit_hash`)
once its build is done, so the watch compares it with the validated one on every look and the
deployment is cancelled before it goes live. Should it go live between two looks, the app is
rolled back at once to the deployment that served before, and the run fails saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from orchestrator.errors import ConfigError, DeployError

from .api import PLATFORM
from .spec import commits_of, git_sources, with_git_sources

if TYPE_CHECKING:
    from .adapter import DigitalOceanPlatform

__all__ = ["BuiltOtherCommit", "git_built", "other_commit", "undo_other_commit"]

log = logging.getLogger(__name__)


class BuiltOtherCommit(DeployError):
    """A deployment built from another commit than the validated one went live."""

    def __init__(self, reason: str, deployment_id: str) -> None:
        super().__init__(reason, platform=PLATFORM, operation="wait for deployment")
        self.reason = reason
        self.deployment_id = deployment_id


def git_built(
    spec: dict[str, Any], commit: str | None, version: str, branch: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The spec to send (git sources never deploying on push; on `branch` when given) and the
    components App Platform builds from git for it. Raises ConfigError when there are some but no
    validated `commit` to hold them to."""
    built = git_sources(spec)
    if not built:
        return spec, []
    if commit is None:
        raise ConfigError(
            f"deploy {version}: {', '.join(built)} build from git, and App Platform builds whatever the branch "
            "holds; no validated commit is known (GITHUB_SHA is not set, or the validation run recorded no "
            "source_commit), so nothing is deployed. Run in Actions, with the validation run recording the "
            "commit it tested (GITHUB_SHA)"
        )
    return with_git_sources(spec, branch), built


def other_commit(built: Sequence[str], commit: str | None) -> Callable[[dict[str, Any]], str | None]:
    """The watch's check: why a deployment must not run (a component of `built` was built from
    another commit than `commit`), or None while it may."""

    def refuse(deployment: dict[str, Any]) -> str | None:
        commits = commits_of(deployment)
        wrong = {name: sha for name, sha in commits.items() if name in built and sha != commit}
        if not wrong:
            return None
        listed = ", ".join(f"{name} from {sha}" for name, sha in sorted(wrong.items()))
        return f"App Platform built {listed}, not the validated commit {commit} (the branch moved after validation)"

    return refuse


def undo_other_commit(
    platform: DigitalOceanPlatform, live: BuiltOtherCommit, before: dict[str, Any], version: str
) -> NoReturn:
    """Roll back to `before` (the deployment that served before) and raise DeployError saying why."""
    if not before.get("id"):
        raise DeployError(
            f"deploy of {version}: {live.reason}, and it went live; there is no earlier deployment to return to, "
            "so it keeps serving: deploy the validated commit again",
            platform=PLATFORM,
            operation="wait for deployment",
        )
    previous = platform.release_of(before)
    log.error("deploy of %s: %s; it went live, rolling back to %s", version, live.reason, previous.version)
    platform.rollback(previous)
    platform.confirm_rollback(True)
    raise DeployError(
        f"deploy of {version}: {live.reason}; it went live for a moment and was rolled back to "
        f"{previous.version} (deployment {before.get('id')}), which serves again",
        platform=PLATFORM,
        operation="wait for deployment",
        returned_to=previous.version,
    )
