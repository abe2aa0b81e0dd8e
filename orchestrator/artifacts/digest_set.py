"""`ArtifactDigests`: the digests of one deploy's artifacts, and the JSON shape they are stored in.

The upstream agents record this shape and the gates read it back (`from_dict`), so it is a
contract: a field added here is optional when read, and an unknown type names its field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.artifacts.image import is_pinned

__all__ = ["ArtifactDigests"]


@dataclass(frozen=True, slots=True)
class ArtifactDigests:
    """The digests of one set of artifacts; pairs are sorted by path."""

    migrations: tuple[tuple[str, str], ...]
    modules: tuple[tuple[str, str], ...]
    image: str | None
    image_pinned: bool
    app_spec: tuple[str, str] | None = None
    """(path, sha256) of the App Platform spec file deployed from the repository (`artifacts.app_spec`)."""
    app_spec_values: tuple[tuple[str, str], ...] = ()
    """(NAME, `sha256:<hex>` or `secret`) of every `${NAME}` the spec file was filled in with."""
    component_images: tuple[tuple[str, str], ...] = ()
    """(`IMAGE_DIGEST_<COMPONENT>` or `IMAGE_TAG_<COMPONENT>`, its value), sorted by variable."""
    source_commit: str | None = None
    """The commit this run validated; App Platform's git-source components must be built from it."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used in the result, the summary and the pipeline store's JSONB columns."""
        data: dict[str, Any] = {
            "migrations": dict(self.migrations),
            "modules": dict(self.modules),
            "image": self.image,
            "image_pinned": self.image_pinned,
        }
        if self.app_spec is not None:
            data["app_spec"] = dict([self.app_spec])
        if self.app_spec_values:
            data["app_spec_values"] = dict(self.app_spec_values)
        if self.component_images:
            data["component_images"] = dict(self.component_images)
        if self.source_commit is not None:
            data["source_commit"] = self.source_commit
        return data

    @classmethod
    def from_dict(cls, data: object) -> ArtifactDigests:
        """Parse `to_dict()` output (as stored by the upstream agents). Raises ValueError naming the field."""
        if not isinstance(data, dict):
            raise ValueError(f"artifact digests: expected an object, got {type(data).__name__}")
        migrations = _string_pairs(data, "migrations", keys="path", values="digest")
        modules = _string_pairs(data, "modules", keys="path", values="digest")
        image = data.get("image")
        if image is not None and not isinstance(image, str):
            raise ValueError("artifact digests: `image` must be a string or null")
        pinned = data.get("image_pinned", image is not None and is_pinned(image))
        if not isinstance(pinned, bool):
            raise ValueError("artifact digests: `image_pinned` must be a boolean")
        spec = data.get("app_spec")
        if spec is not None and (
            not isinstance(spec, dict) or len(spec) != 1 or not all(isinstance(x, str) for x in (*spec, *spec.values()))
        ):
            raise ValueError("artifact digests: `app_spec` must map one path string to its digest string")
        app_spec_values = _string_pairs(data, "app_spec_values", keys="name", values="value")
        component_images = _string_pairs(data, "component_images", keys="name", values="value")
        commit = data.get("source_commit")
        if commit is not None and not isinstance(commit, str):
            raise ValueError("artifact digests: `source_commit` must be a string or null")
        return cls(
            source_commit=commit,
            migrations=migrations,
            modules=modules,
            image=image,
            image_pinned=pinned,
            app_spec=next(iter(spec.items())) if spec else None,
            app_spec_values=app_spec_values,
            component_images=component_images,
        )


def _string_pairs(data: dict[Any, Any], section: str, *, keys: str, values: str) -> tuple[tuple[str, str], ...]:
    raw = data.get(section, {})
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise ValueError(f"artifact digests: `{section}` must map {keys} strings to {values} strings")
    return tuple(sorted(raw.items()))
