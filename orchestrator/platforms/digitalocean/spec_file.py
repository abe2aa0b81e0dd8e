"""The repository's app spec on App Platform: loaded (`orchestrator.app_spec` fills it in and
digests it) and held to what the gates approved, with the live app's encrypted values carried over.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.app_spec import FilledSpec, read_spec_file
from orchestrator.artifacts import ArtifactDigests
from orchestrator.errors import GateError

__all__ = ["load_app_spec", "refuse_unapproved", "with_sealed_values"]


def load_app_spec(path: Path, env: Mapping[str, str], *, shown: str) -> FilledSpec:
    """The spec at `path`, `${VAR}`s filled in from `env`. Raises ConfigError naming artifacts.app_spec."""
    return read_spec_file(path, env, shown=shown)


def refuse_unapproved(
    spec: FilledSpec | None, component_images: Mapping[str, str], digests: ArtifactDigests, version: str
) -> None:
    """Raise GateError (exit 3, nothing touched) unless the spec this adapter loaded and the component
    images it will set are the ones the gates approved: the file is read once here and once for
    the gate, and whatever changed between the two reads must not run."""
    problems: list[str] = []
    loaded = (spec.path, spec.file_sha256) if spec is not None else None
    if loaded != digests.app_spec:
        problems.append(f"app spec: approved {digests.app_spec}, loaded {loaded}")
    if spec is not None and spec.values != digests.app_spec_values:
        changed = sorted(set(spec.values) ^ set(digests.app_spec_values))
        problems.append("app spec values: " + ", ".join(f"${{{name}}}" for name, _ in changed) + " differ")
    if tuple(sorted(component_images.items())) != digests.component_images:
        problems.append("component images differ from the approved IMAGE_DIGEST_<COMPONENT> variables")
    if problems:
        raise GateError(
            f"gate artifacts: the release {version} about to be deployed is not what the gates approved "
            f"({'; '.join(problems)}); it changed while this run was checking it, run again",
            gate="artifacts",
            facts={"artifact": "app_spec", "kind": "app_spec", "change": "changed", "version": version},
        )


def with_sealed_values(spec: dict[str, Any], live: dict[str, Any] | None) -> dict[str, Any]:
    """`spec` with the live app's encrypted `registry_credentials` on every image component whose
    block in the repository names none for the same registry: a file in git never holds them, and
    App Platform needs them on every submission to keep pulling a private image."""
    new = copy.deepcopy(spec)
    sealed = {
        str(c.get("name")): c["image"]
        for kind in ("services", "workers", "jobs")
        for c in (live or {}).get(kind) or []
        if isinstance(c.get("image"), dict) and c["image"].get("registry_credentials")
    }
    for kind in ("services", "workers", "jobs"):
        for component in new.get(kind) or []:
            image, old = component.get("image"), sealed.get(str(component.get("name")))
            if not isinstance(image, dict) or not old or image.get("registry_credentials"):
                continue
            same_registry = image.get("registry_type") == old.get("registry_type") and image.get("registry") == old.get(
                "registry"
            )
            if same_registry:
                image["registry_credentials"] = old["registry_credentials"]
    return new
