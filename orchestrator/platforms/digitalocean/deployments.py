"""Reading App Platform's answers: deployment outcomes as sentences, timestamps, newest deployments."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from orchestrator.platforms.base import Release

from .image import ImageSource
from .spec import image_of, version_of
from .watch import Outcome

__all__ = [
    "EPOCH",
    "condition",
    "deployment_release",
    "failure",
    "kept_releases",
    "newest_after",
    "rolled_back_from",
    "same_image",
    "when",
]

EPOCH = datetime.min.replace(tzinfo=UTC)


_KEPT_PHASES = ("ACTIVE", "SUPERSEDED")


def deployment_release(deployment: dict[str, Any], component: str | None, url: str | None = None) -> Release:
    """The release an App Platform deployment runs: the version label we wrote on `component`."""
    spec = deployment.get("spec")
    image = image_of(spec, component)
    version = version_of(spec, component)
    if version is None:
        # Deployed without us: fall back to what identifies it best.
        version = (image.digest or image.tag if image else None) or f"deployment-{str(deployment.get('id'))[:8]}"
    return Release(version=version, url=url, image=image.reference if image else None, ref=str(deployment.get("id")))


def kept_releases(deployments: list[dict[str, Any]], release_of: Callable[[dict[str, Any]], Release]) -> list[Release]:
    """ACTIVE and SUPERSEDED deployments as releases, newest first, one per version. A version whose
    newest deployment was rolled back from is left out, unless it is live."""
    newest_first = sorted(
        (d for d in deployments if d.get("phase") in _KEPT_PHASES),
        key=lambda d: when(d.get("created_at")),
        reverse=True,
    )
    left = rolled_back_from(newest_first)
    kept: list[Release] = []
    seen: set[str] = set()
    for deployment in newest_first:
        release = release_of(deployment)
        if release.version in seen:
            continue
        seen.add(release.version)
        if deployment.get("phase") == "ACTIVE" or str(deployment.get("id")) not in left:
            kept.append(release)
    return kept


def rolled_back_from(newest_first: list[dict[str, Any]]) -> set[str]:
    """Ids of deployments that the next deployment to go live rolled back from (a rollback
    deployment, `cloned_from` another one)."""
    left: set[str] = set()
    for newer, older in itertools.pairwise(newest_first):
        cloned = newer.get("cloned_from")
        if cloned and cloned != older.get("id"):
            left.add(str(older.get("id")))
    return left


def same_image(current: ImageSource | None, wanted: ImageSource) -> bool:
    return current is not None and current.to_spec() == wanted.to_spec()


def failure(outcome: Outcome, deadline: float) -> str:
    deployment_id = outcome.deployment.get("id")
    if outcome.timed_out:
        return (
            f"deployment {deployment_id} still in phase {outcome.phase} after {outcome.elapsed:.1f} s "
            f"({outcome.phase_elapsed:.1f} s in {outcome.phase}; deadline {deadline:g} s). It was cancelled and "
            "the previous release keeps serving; if builds are legitimately this slow, raise the deadline"
        )
    why = cause(outcome.deployment)
    if outcome.phase == "ERROR":
        return (
            f"deployment {deployment_id} failed (ERROR{': ' + why if why else ''}) after "
            f"{outcome.elapsed:.1f} s; App Platform kept the previous release serving"
        )
    if outcome.phase == "SUPERSEDED":
        return f"deployment {deployment_id} was superseded by a newer deployment of the app before it went live"
    return f"deployment {deployment_id} was cancelled (phase {outcome.phase}) before it went live"


def cause(deployment: dict[str, Any]) -> str:
    steps = ((deployment.get("progress") or {}).get("steps")) or []
    reasons = [
        f"{s.get('name')}: {(s.get('reason') or {}).get('message')}"
        for s in steps
        if (s.get("reason") or {}).get("message")
    ]
    return "; ".join(reasons)


def condition(found: dict[str, Any]) -> str:
    components = found.get("components") or []
    where = f" (components: {', '.join(components)})" if components else ""
    return f"{found.get('code', 'unknown')}: {found.get('message', 'no message')}{where}"


def newest_after(
    app: dict[str, Any], before: datetime, matches: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    candidates: list[dict[str, Any] | None] = [
        app.get(key)
        for key in ("pending_deployment", "in_progress_deployment", "pinned_deployment", "active_deployment")
    ]
    fresh: list[dict[str, Any]] = [
        d for d in candidates if d and d.get("id") and when(d.get("created_at")) > before and matches(d)
    ]
    if not fresh:
        return None
    newest = max(fresh, key=lambda d: when(d.get("created_at")))
    return dict(newest)


def when(stamp: Any) -> datetime:
    """An API timestamp as a comparable aware datetime; missing or unreadable sorts first."""
    if not stamp:
        return EPOCH
    try:
        parsed = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return EPOCH
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
