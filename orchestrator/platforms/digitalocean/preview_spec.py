"""Per-PR preview apps: a deterministic name and a spec derived from production's.

The name is digitalocean/app_action's, character for character (`<owner>-<repo>-<pr>-merge`,
lowercased, `/` `_` `.` to `-`, `:` dropped, cut to 23 characters, plus `-` and the first 8 hex
digits of the sha256 of the uncut name): teardown finds the app again from the PR alone, with no
state kept between runs, and app_action's `from_pr_preview` delete finds ours (and we find its).
Releases before issue 15 named previews `<owner>-<repo>-<pr>-<hash>`; `legacy_preview_name` keeps
that name so their teardown still finds those apps.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

__all__ = ["MAX_NAME", "legacy_preview_name", "preview_name", "preview_spec"]

MAX_NAME = 32
_REPLACED = (("/", "-"), (":", ""), ("_", "-"), (".", "-"))
_NOT_ALLOWED = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")


def preview_name(repo: str, pr_number: int) -> str:
    """`acme-shop-7-merge-1b740c92` for `Acme/Shop` PR 7, exactly as app_action names it."""
    if pr_number < 1:
        raise ValueError(f"pr_number should be a positive integer, not {pr_number}")
    owner, _, name = repo.strip().partition("/")
    base = f"{owner}-{name}-{pr_number}/merge".lower()
    for old, new in _REPLACED:
        base = base.replace(old, new)
    suffix = "-" + hashlib.sha256(base.encode()).hexdigest()[:8]
    return base[: MAX_NAME - len(suffix)] + suffix


def legacy_preview_name(repo: str, pr_number: int) -> str:
    """The name releases before issue 15 gave a preview app (`acme-shop-42-1a2b3c4d`)."""
    identity = f"{repo.strip().lower()}#{pr_number}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    suffix = f"-{pr_number}-{digest}"
    stem = _DASHES.sub("-", _NOT_ALLOWED.sub("-", repo.strip().lower().replace("/", "-"))).strip("-")
    if not stem or not stem[0].isalpha():
        stem = ("pr-" + stem).strip("-")
    return stem[: MAX_NAME - len(suffix)].rstrip("-") + suffix


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
