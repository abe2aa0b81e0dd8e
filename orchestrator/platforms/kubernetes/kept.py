"""The releases a rolling Deployment keeps to return to: pod templates that went live, newest first.

They live in one annotation on the Deployment `<app>` (`deploy-orchestrator/kept-templates`, a
JSON list of `{"version", "template"}`). Only a template that was rolled out fully and then
replaced by a newer one is kept; a template the orchestrator moves away from by a rollback (an
automatic one after a failed rollout or verification, or a manual one) is dropped, because a
release that was rolled back from is no rollback candidate. So after v2 → v3 → bad4 (undone), the
Deployment runs v3 and keeps v2: a rollback goes back to v2, never forward to bad4.

The two older annotations (`previous-template`, `previous-version`) still mirror the newest kept
template, for tools that read them, and are read when the list is missing (Deployments rolled by
an earlier version of this adapter).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["KEPT_ANNOTATION", "KeptTemplate", "dropping", "keeping", "kept_templates", "with_kept"]

KEPT_ANNOTATION = "deploy-orchestrator/kept-templates"
PREVIOUS_TEMPLATE_ANNOTATION = "deploy-orchestrator/previous-template"
PREVIOUS_VERSION_ANNOTATION = "deploy-orchestrator/previous-version"
# Annotations share a 256 KiB budget per object; a pod template is a few KiB at most.
_LIMIT = 10


@dataclass(frozen=True, slots=True)
class KeptTemplate:
    version: str
    template: Mapping[str, Any]


def kept_templates(deployment: Mapping[str, Any]) -> list[KeptTemplate]:
    """The kept templates, newest first ([] when none; unreadable annotations count as none)."""
    annotations = (deployment.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(KEPT_ANNOTATION)
    if raw:
        try:
            items = json.loads(raw)
        except ValueError:
            items = []
        return [
            KeptTemplate(str(item["version"]), dict(item["template"]))
            for item in items
            if isinstance(item, Mapping) and item.get("version") and isinstance(item.get("template"), Mapping)
        ]
    version = annotations.get(PREVIOUS_VERSION_ANNOTATION)
    template = annotations.get(PREVIOUS_TEMPLATE_ANNOTATION)
    if not version or not template:
        return []
    try:
        return [KeptTemplate(str(version), dict(json.loads(template)))]
    except ValueError:
        return []


def keeping(kept: Sequence[KeptTemplate], version: str | None, template: Mapping[str, Any]) -> list[KeptTemplate]:
    """`kept` with the template being replaced at the front (one entry per version)."""
    if not version:
        return list(kept)
    return [KeptTemplate(version, dict(template)), *(k for k in kept if k.version != version)][:_LIMIT]


def dropping(kept: Sequence[KeptTemplate], *versions: str | None) -> list[KeptTemplate]:
    return [k for k in kept if k.version not in versions]


def with_kept(annotations: dict[str, str], kept: Sequence[KeptTemplate]) -> None:
    """Write `kept` into `annotations` (in place), the two mirror annotations included."""
    annotations[KEPT_ANNOTATION] = json.dumps(
        [{"version": k.version, "template": dict(k.template)} for k in kept], separators=(",", ":")
    )
    if kept:
        annotations[PREVIOUS_TEMPLATE_ANNOTATION] = json.dumps(dict(kept[0].template), separators=(",", ":"))
        annotations[PREVIOUS_VERSION_ANNOTATION] = kept[0].version
    else:
        annotations.pop(PREVIOUS_TEMPLATE_ANNOTATION, None)
        annotations.pop(PREVIOUS_VERSION_ANNOTATION, None)
