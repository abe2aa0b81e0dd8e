"""Reading our release Deployments: their size, age, labels, and which the Service sends traffic to."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orchestrator.errors import DeployError
from orchestrator.platforms.base import Release

from .api import PLATFORM
from .cluster import Cluster
from .manifest import STARTED_ANNOTATION, TOTAL_ANNOTATION, VERSION_LABEL, image_of, version_of

__all__ = [
    "RETIRED_ANNOTATION",
    "is_retired",
    "labels",
    "notes_of",
    "refuse_live_image_change",
    "release",
    "replicas",
    "serving",
    "started",
    "template_source",
    "total",
]

RETIRED_ANNOTATION = "deploy-orchestrator/retired-at"
EPOCH = datetime.min.replace(tzinfo=UTC)


def notes_of(deployment: dict[str, Any]) -> dict[str, str]:
    return dict((deployment.get("metadata") or {}).get("annotations") or {})


def replicas(deployment: dict[str, Any]) -> int:
    return int((deployment.get("spec") or {}).get("replicas", 1))


def total(deployment: dict[str, Any]) -> int:
    noted = notes_of(deployment).get(TOTAL_ANNOTATION)
    return int(noted) if noted and noted.isdigit() else max(replicas(deployment), 1)


def started(deployment: dict[str, Any]) -> datetime:
    """When the release started (our annotation, else the object's creation), for newest-first order."""
    metadata = deployment.get("metadata") or {}
    stamp = str(notes_of(deployment).get(STARTED_ANNOTATION) or metadata.get("creationTimestamp") or "")
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        return EPOCH
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def is_retired(deployment: dict[str, Any]) -> bool:
    return RETIRED_ANNOTATION in notes_of(deployment)


def labels(deployment: dict[str, Any]) -> dict[str, str]:
    return dict(((deployment.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {})


def serving(service: dict[str, Any], deployments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Deployments with pods that the Service's selector picks."""
    selector = (service.get("spec") or {}).get("selector") or {}
    if not selector:
        return []
    return [d for d in deployments if replicas(d) > 0 and all(labels(d).get(k) == v for k, v in selector.items())]


def release(deployment: dict[str, Any]) -> Release:
    return Release(
        version=version_of(deployment) or deployment["metadata"]["name"],
        image=image_of(deployment),
        ref=deployment["metadata"]["name"],
    )


def template_source(
    main: dict[str, Any], deployments: list[dict[str, Any]], cluster: Cluster, operation: str
) -> dict[str, Any]:
    """The Deployment whose pod template every new release copies: the live one, else `<app>`."""
    live = serving(main, deployments)
    source = max(live, key=lambda d: (total(d), started(d))) if live else None
    if source is None:
        source = next((d for d in deployments if d["metadata"]["name"] == cluster.app), None)
    if source is None:
        raise DeployError(
            f"{operation}: Deployment {cluster.app} not found in namespace {cluster.namespace}; create it "
            "first: its pod template is the template of every release",
            platform=PLATFORM,
            operation=operation,
        )
    if version_of(source) is None:
        name = source["metadata"]["name"]
        raise DeployError(
            f"{operation}: the pods of Deployment {name} carry no {VERSION_LABEL} label, so the Service cannot "
            f"tell them from the new release's; label its pod template with the version it runs "
            f"(spec.template.metadata.labels: {{{VERSION_LABEL}: <version>}}) and deploy again",
            platform=PLATFORM,
            operation=operation,
        )
    return source


def refuse_live_image_change(
    main: dict[str, Any],
    deployments: list[dict[str, Any]],
    version: str,
    image: str | None,
    container: str | None,
    operation: str,
) -> None:
    """Refuse to run another image under a version label that already serves traffic: it would
    replace (or join) the live pods without a pre-switch check, and a rollback to the previous
    release, found by version label, would then have nothing to return to."""
    if image is None:
        return
    for deployment in serving(main, deployments):
        running = image_of(deployment, container)
        if version_of(deployment) == version and running != image:
            raise DeployError(
                f"{operation}: release {version} is live with image {running} (Deployment "
                f"{deployment['metadata']['name']}); deploy the new image {image} under a new version label",
                platform=PLATFORM,
                operation=operation,
            )
