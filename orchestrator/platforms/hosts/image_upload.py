"""An image release's image, saved on the deploying side for hosts that do not pull (`hosts.image_transfer: upload`).

The image must be in this machine's podman or docker (built or pulled here, e.g. by the CI job):
it is saved once per release as an archive, named by its sha256 (checked on each host before
loading) and by the image's ID (checked on what each host loaded). A reference pinned by digest is
found only if this machine's image has that digest, so what is saved is what the gate approved.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import DeployError

__all__ = ["SavedImage", "save_image"]

_SAVE_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class SavedImage:
    reference: str
    image_id: str
    archive: Path
    sha256: str


def save_image(reference: str, archive: Path) -> SavedImage:
    """Save `reference` from this machine's engine to `archive`. Raises DeployError saying what to do."""
    engine = shutil.which("podman") or shutil.which("docker")
    if engine is None:
        raise DeployError(
            f"image {reference}: hosts.image_transfer upload saves the image on this machine with podman or docker, "
            "and neither is installed; install one (apt-get install podman), or set hosts.image_transfer: pull",
            platform="hosts",
            operation="start",
        )
    image_id = _run(engine, "image", "inspect", "--format", "{{.Id}}", reference, reference=reference).strip()
    if not image_id.startswith("sha256:"):
        image_id = f"sha256:{image_id}"
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.unlink(missing_ok=True)
    _run(engine, "save", "--output", str(archive), reference, reference=reference)
    return SavedImage(reference, image_id, archive, _sha256(archive))


def _run(engine: str, *args: str, reference: str) -> str:
    try:
        done = subprocess.run(
            [engine, *args],
            capture_output=True,
            text=True,
            timeout=_SAVE_SECONDS,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeployError(
            f"image {reference}: {engine} {args[0]} failed: {exc}", platform="hosts", operation="start"
        ) from exc
    if done.returncode != 0:
        raise DeployError(
            f"image {reference}: `{engine} {' '.join(args[:2])}` failed (exit {done.returncode}): "
            f"{done.stderr.strip()[-400:]}; with hosts.image_transfer upload the image must be in this machine's "
            "engine (build or pull it here first)",
            platform="hosts",
            operation="start",
        )
    return done.stdout


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
