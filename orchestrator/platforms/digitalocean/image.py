"""Container image references -> App Platform's `image` source block.

App Platform pulls from three registries only (DOCR, GHCR, Docker Hub) and takes the reference
apart: `registry_type`, `registry` (empty for DOCR), `repository`, and either `tag` or `digest`
(never both). Digests are preferred: the same tag can point at new content, and App Platform's
rollback warns (`image_source_missing_digest`) when a release has no digest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.errors import ConfigError

__all__ = ["ImageSource", "parse_image"]

RegistryType = Literal["DOCR", "GHCR", "DOCKER_HUB"]

_DOCR_HOST = "registry.digitalocean.com"
_GHCR_HOST = "ghcr.io"
_DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PATH_PART = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")


@dataclass(frozen=True, slots=True)
class ImageSource:
    registry_type: RegistryType
    registry: str | None
    repository: str
    tag: str | None = None
    digest: str | None = None

    def to_spec(self) -> dict[str, Any]:
        """The App Platform `image` block (tag or digest, never both)."""
        block: dict[str, Any] = {"registry_type": self.registry_type, "repository": self.repository}
        if self.registry and self.registry_type != "DOCR":
            block["registry"] = self.registry
        if self.digest:
            block["digest"] = self.digest
        else:
            block["tag"] = self.tag or "latest"
        return block

    @property
    def reference(self) -> str:
        """The reference a person would type (`ghcr.io/acme/api@sha256:...`)."""
        host = {"DOCR": _DOCR_HOST, "GHCR": _GHCR_HOST, "DOCKER_HUB": "docker.io"}[self.registry_type]
        path = "/".join(p for p in (host, self.registry, self.repository) if p)
        return f"{path}@{self.digest}" if self.digest else f"{path}:{self.tag or 'latest'}"

    @classmethod
    def from_spec(cls, block: dict[str, Any]) -> ImageSource:
        """Read back an `image` block from an app or deployment spec."""
        registry_type = block.get("registry_type", "DOCR")
        if registry_type not in ("DOCR", "GHCR", "DOCKER_HUB"):
            registry_type = "DOCR"
        return cls(
            registry_type=registry_type,
            registry=block.get("registry") or None,
            repository=str(block.get("repository", "")),
            tag=block.get("tag") or None,
            digest=block.get("digest") or None,
        )


def parse_image(ref: str) -> ImageSource:
    """Parse `registry.digitalocean.com/<registry>/<repo>`, `ghcr.io/<owner>/<repo>` or a Docker Hub ref.

    A `@sha256:` digest wins over a tag. Raises ConfigError naming the reference and what App
    Platform accepts.
    """
    text = ref.strip()
    name, digest = text, None
    if "@" in text:
        name, digest = text.split("@", 1)
        if not _DIGEST.match(digest):
            raise ConfigError(f"image {ref!r}: the digest should be sha256:<64 lowercase hex digits>")
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
        if not _TAG.match(tag):
            raise ConfigError(f"image {ref!r}: {tag!r} is not a valid tag")
    parts = name.split("/")
    first = parts[0]
    is_host = "." in first or ":" in first or first == "localhost"
    if is_host and first == _DOCR_HOST:
        registry_type: RegistryType = "DOCR"
        # The account's one DOCR registry is implied: App Platform wants `registry` empty for DOCR
        # (`to_spec` leaves it out); we keep the name only to print the reference.
        if len(parts) < 3:
            raise ConfigError(f"image {ref!r}: expected registry.digitalocean.com/<registry>/<repository>")
        registry, path = parts[1], parts[2:]
    elif is_host and first == _GHCR_HOST:
        registry_type, registry, path = "GHCR", parts[1] if len(parts) > 1 else "", parts[2:]
        if len(parts) < 3:
            raise ConfigError(f"image {ref!r}: expected ghcr.io/<owner>/<repository>")
    elif is_host and first not in _DOCKER_HUB_HOSTS:
        raise ConfigError(
            f"image {ref!r}: App Platform pulls only from registry.digitalocean.com (DOCR), ghcr.io (GHCR) "
            "or Docker Hub; push the image to one of them"
        )
    else:
        rest = parts[1:] if is_host else parts
        registry_type = "DOCKER_HUB"
        registry, path = (rest[0], rest[1:]) if len(rest) > 1 else ("library", rest)
    repository = "/".join(path)
    if not repository or not all(_PATH_PART.match(p) for p in path):
        raise ConfigError(f"image {ref!r}: the repository should be lowercase letters, digits and . _ - separators")
    return ImageSource(registry_type, registry, repository, tag=None if digest else (tag or "latest"), digest=digest)
