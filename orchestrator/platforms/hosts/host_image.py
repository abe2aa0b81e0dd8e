"""A release that is a container image, ON a host: pulled or loaded, held to its digest, run by its ID.

Runs in the agent. A release is an image release when it has an image and `local.command` names
`{image}` (e.g. `[podman, run, --rm, --network=host, "{image}"]`); otherwise the image is only its
label, as on platform local. Before anything starts, the image is brought to the host's engine
(`hosts.container_engine`, or podman, else docker, on the host's PATH) and checked:

- `pull`: the reference must be pinned (`name@sha256:...`); the engine pulls it (checking the
  content against that digest as it goes), and the pulled image must list that digest.
- `upload`: the deploying side saved the image (`image_upload`) and sent the archive (unless the
  host already holds that image ID); its sha256 is checked, the engine loads it, and the image's ID
  (the digest of its config, which names every layer's content) must be the ID the deploying side saved.

The command then runs the image by that ID (`{image}`), never by a name a later pull could move;
`{engine}` is the engine's path.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["ImageRefused", "is_image_release", "pinned_digest", "prepare_image", "substitute"]

_PULL_SECONDS = 600.0
_ID = re.compile(r"^(sha256:)?[0-9a-f]{64}$")
_PINNED = re.compile(r"@(sha256:[0-9a-f]{64})$")


class ImageRefused(Exception):
    """The image cannot be brought here as validated; nothing was started."""


def is_image_release(command: Sequence[str], image: str | None) -> bool:
    return image is not None and any("{image}" in arg for arg in command)


def pinned_digest(reference: str) -> str | None:
    """`sha256:...` of a reference pinned by digest, or None for one given by tag."""
    found = _PINNED.search(reference)
    return found.group(1) if found else None


def substitute(command: Sequence[str], image_id: str, engine: str) -> tuple[str, ...]:
    return tuple(arg.replace("{image}", image_id).replace("{engine}", engine) for arg in command)


def find_engine(configured: str | None) -> str:
    """The engine's path on this host. Raises ImageRefused saying what to install."""
    if configured is not None:
        found = shutil.which(configured)
        if found is None:
            raise ImageRefused(
                f"hosts.container_engine {configured!r} is not installed here (not on PATH); install it "
                "(Debian/Ubuntu: apt-get install podman) or point hosts.container_engine at it"
            )
        return found
    for name in ("podman", "docker"):
        found = shutil.which(name)
        if found is not None:
            return found
    raise ImageRefused(
        "neither podman nor docker is installed here, and the release is an image: install one "
        "(Debian/Ubuntu: apt-get install podman), or set hosts.container_engine to its path"
    )


def prepare_image(spec: dict[str, Any], configured_engine: str | None) -> tuple[str, str]:
    """Bring the image of `spec` here and check it. Returns (image ID, engine path). Raises ImageRefused."""
    engine = find_engine(configured_engine)
    reference = str(spec["reference"])
    if spec["transfer"] == "pull":
        digest = pinned_digest(reference)
        if digest is None:
            raise ImageRefused(f"image {reference} is not pinned by digest; pull only pinned images")
        _engine(engine, "pull", "--quiet", reference, what=f"pulling {reference}")
        image_id = _inspect(engine, reference, "{{.Id}}")
        listed = json.loads(_inspect(engine, image_id, "{{json .RepoDigests}}") or "[]")
        if not any(str(entry).endswith("@" + digest) for entry in listed or ()):
            raise ImageRefused(f"image {reference} was pulled, but the engine lists digests {listed}, not {digest}")
        return _full(image_id), engine
    expected = _full(str(spec["id"]))
    if spec.get("archive"):
        archive = Path(spec["archive"])
        actual = _sha256(archive)
        if actual != spec["sha256"]:
            archive.unlink(missing_ok=True)
            raise ImageRefused(f"the image archive has sha256 {actual}, not {spec['sha256']} as sent; removed")
        _engine(engine, "load", "--quiet", "--input", str(archive), what=f"loading {reference}")
        archive.unlink()
    try:
        loaded = _full(_inspect(engine, expected, "{{.Id}}"))
    except ImageRefused:
        loaded = ""
    if loaded != expected:
        raise ImageRefused(
            f"image {reference}: the archive loaded here does not hold image {expected} as saved "
            f"({loaded or 'not found'}); refused"
        )
    return expected, engine


def _full(image_id: str) -> str:
    image_id = image_id.strip()
    if not _ID.match(image_id):
        raise ImageRefused(f"the engine answered {image_id!r} where an image ID was expected")
    return image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"


def _inspect(engine: str, image: str, template: str) -> str:
    return _engine(engine, "image", "inspect", "--format", template, image, what=f"inspecting {image}").strip()


def _engine(engine: str, *args: str, what: str) -> str:
    try:
        done = subprocess.run(
            [engine, *args],
            capture_output=True,
            text=True,
            timeout=_PULL_SECONDS,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImageRefused(f"{what} with {engine} failed: {exc}") from exc
    if done.returncode != 0:
        raise ImageRefused(f"{what} with {engine} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
