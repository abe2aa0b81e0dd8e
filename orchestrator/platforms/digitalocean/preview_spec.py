"""Per-PR preview apps: a deterministic name and a spec derived from production's.

The name follows digitalocean/app_action's scheme (`<owner>-<repo>-<pr>`, lowercased, cut, plus
`-` and 8 hex chars of a sha256, at most 32 chars) so teardown finds the app again from the PR
alone, with no state kept between runs. We keep the PR number whole and cut the owner/repo part
instead, so a long repository name still shows which PR an app belongs to; the hash, taken over
the uncut identity, keeps two long names that share a prefix apart.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

__all__ = ["MAX_NAME", "preview_name", "preview_spec"]

MAX_NAME = 32
_NOT_ALLOWED = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")


def preview_name(repo: str, pr_number: int) -> str:
    """`acme-shop-42-1a2b3c4d` for `Acme/Shop` PR 42: valid as an App Platform app name, ≤ 32 chars."""
    if pr_number < 1:
        raise ValueError(f"pr_number should be a positive integer, not {pr_number}")
    identity = f"{repo.strip().lower()}#{pr_number}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    suffix = f"-{pr_number}-{digest}"
    stem = _DASHES.sub("-", _NOT_ALLOWED.sub("-", repo.strip().lower().replace("/", "-"))).strip("-")
    if not stem or not stem[0].isalpha():
        # App names must start with a letter (`^[a-z][a-z0-9-]{0,30}[a-z0-9]$`).
        stem = ("pr-" + stem).strip("-")
    stem = stem[: MAX_NAME - len(suffix)].rstrip("-")
    return stem + suffix


def preview_spec(production: dict[str, Any], name: str) -> dict[str, Any]:
    """Production's spec renamed, without domains and alerts (a preview must not claim production's
    hostnames nor page anyone) and without deploy-on-push (the PR's runs deploy it explicitly)."""
    spec = copy.deepcopy(production)
    spec["name"] = name
    spec.pop("domains", None)
    spec.pop("alerts", None)
    for kind in ("services", "workers", "jobs", "static_sites"):
        for component in spec.get(kind) or []:
            component.pop("alerts", None)
            image = component.get("image")
            if isinstance(image, dict):
                image.pop("deploy_on_push", None)
            for source in ("github", "gitlab", "bitbucket"):
                if isinstance(component.get(source), dict):
                    component[source]["deploy_on_push"] = False
    return spec
