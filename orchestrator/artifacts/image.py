"""The image reference as the gates compare it: pinned by digest or given by a (movable) tag.

Also app_action's per-component image variables (`IMAGE_DIGEST_<COMPONENT>`, `IMAGE_TAG_<COMPONENT>`),
which App Platform reads beside the image.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from orchestrator.errors import ConfigError

if TYPE_CHECKING:
    from orchestrator.artifacts.digest_set import ArtifactDigests

__all__ = ["component_image_vars", "digest_image", "image_warning", "is_pinned"]

_IMAGE_DIGEST = re.compile(r"^(?P<name>[^@\s]+)@sha256:(?P<hex>[0-9a-f]{64})$")
_COMPONENT_IMAGE_VARS = ("IMAGE_DIGEST_", "IMAGE_TAG_")
_TAG_WARNING = (
    "tags move, so the gate can only compare the tag text, not the content; pin the image by digest "
    "(name@sha256:<hex>, shown by `docker buildx imagetools inspect <image>` or the registry) "
    "and have the ValidationAgent record that digest"
)


def is_pinned(reference: str) -> bool:
    """Whether `reference` names its content (`name@sha256:<64 lowercase hex digits>`)."""
    return _IMAGE_DIGEST.match(reference) is not None


def digest_image(reference: str) -> tuple[str, bool]:
    """(recorded reference, pinned). A pinned reference keeps `name@sha256:<hex>` and drops any tag."""
    match = _IMAGE_DIGEST.match(reference)
    if match is None:
        return reference, False
    name = match.group("name")
    # A tag after the last path segment (`repo:1.2@sha256:...`); a registry port (`host:5000/repo`) is not one.
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return f"{name}@sha256:{match.group('hex')}", True


def image_warning(digests: ArtifactDigests) -> str | None:
    """The warning for an unpinned image, or None."""
    if digests.image is None or digests.image_pinned:
        return None
    return f"image {digests.image} is given by tag: {_TAG_WARNING}"


def component_image_vars(env: Mapping[str, str], platform: str = "digitalocean") -> dict[str, str]:
    """app_action's per-component image variables set in `env`: `IMAGE_DIGEST_<COMPONENT>`, or
    `IMAGE_TAG_<COMPONENT>` for a component with no digest variable (a digest wins, as in app_action).
    Only App Platform reads them: on any other platform there are none. Raises ConfigError for a
    digest that is not `sha256:<64 lowercase hex digits>`."""
    if platform != "digitalocean":
        return {}
    found = {k: v.strip() for k, v in env.items() if k.startswith(_COMPONENT_IMAGE_VARS) and v.strip()}
    problems = [
        f"{name}: {value!r} is not an image digest; it should be sha256:<64 lowercase hex digits>"
        for name, value in sorted(found.items())
        if name.startswith("IMAGE_DIGEST_") and not re.fullmatch(r"sha256:[0-9a-f]{64}", value)
    ]
    if problems:
        raise ConfigError(problems)
    digested = {name.removeprefix("IMAGE_DIGEST_") for name in found if name.startswith("IMAGE_DIGEST_")}
    return {k: v for k, v in found.items() if not (k.startswith("IMAGE_TAG_") and k[10:] in digested)}
