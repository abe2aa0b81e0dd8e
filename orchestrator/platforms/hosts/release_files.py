"""A release's files for the hosts: captured once here, packed as a tarball, named by two digests.

`pack` captures `local.source` exactly as the `local` platform does (`snapshot.capture`: the same
skipped names, the tree digest over paths, contents, exec bits and symlinks), holds the copies of
gated artifacts to the digests the gate approved, and packs the snapshot into a tarball with fixed
owners and timestamps. Each host is sent the tarball's sha256 (checked before unpacking) and the
tree digest (checked on the copy its supervisor captured), so a host runs exactly what was validated.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.artifacts import ArtifactDigests
from orchestrator.errors import DeployError
from orchestrator.platforms.local.snapshot import SnapshotError, capture, check_gated, remove

__all__ = ["ReleaseFiles", "pack"]


@dataclass(frozen=True, slots=True)
class ReleaseFiles:
    version: str
    tree_digest: str
    tarball: Path
    sha256: str


def pack(
    version: str, *, source: Path, workspace: Path, staging: Path, approved: ArtifactDigests | None
) -> ReleaseFiles:
    """Capture and pack `version`'s files under `staging`. Raises DeployError (files not as approved)."""
    snapshot = staging / "releases" / version
    try:
        captured = capture(source, snapshot, leave_out=(staging,), version=version)
        if approved is not None:
            check_gated(
                approved,
                workspace=workspace,
                source=source,
                snapshot=snapshot,
                version=version,
                captured=captured.files,
            )
    except SnapshotError as exc:
        remove(snapshot)
        raise DeployError(str(exc), platform="hosts", operation="start") from exc
    tarball = staging / "uploads" / f"{version}.tar"
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(snapshot.rglob("*")):
            info = archive.gettarinfo(str(path), arcname=path.relative_to(snapshot).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if info.isfile():
                with path.open("rb") as f:
                    archive.addfile(info, f)
            else:
                archive.addfile(info)
    return ReleaseFiles(version, captured.digest, tarball, _sha256(tarball))


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
