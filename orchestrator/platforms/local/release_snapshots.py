"""Which files a local release runs from: its kept snapshot, or one captured now and held to the gate.

A deploy captures `local.source` into the release's own directory (`snapshot.capture`) and holds
the copies of gated artifacts to the digests the gate approved; a kept release runs from the
snapshot it was captured into. A rollback never runs from the workspace: a retired release comes
back only if `local.source` holds exactly the files it had (the same tree digest).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.artifacts import ArtifactDigests
from orchestrator.errors import DeployError
from orchestrator.platforms.local.snapshot import (
    SnapshotError,
    approved_migration_paths,
    capture,
    check_gated,
    remove,
)
from orchestrator.platforms.local.state import StatePaths

__all__ = ["ReleaseSnapshots", "SnapshotFiles"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SnapshotFiles:
    """What the supervisor is told a release runs from."""

    directory: Path | None
    """None for a kept release recorded before snapshots."""
    digest: str
    gated: tuple[tuple[str, str, str], ...]
    """(section, workspace key, digest) of every gated file the snapshot holds a copy of."""


@dataclass(frozen=True, slots=True)
class ReleaseSnapshots:
    """The snapshots of one local target's releases, under its state directory."""

    paths: StatePaths
    workspace: Path
    source: Path
    """`local.source`, resolved: what a deploy captures."""
    cwd: Path | None
    """`local.cwd`, resolved; None: a release runs in its snapshot's top directory."""
    leave_out: tuple[Path, ...]
    """Never captured (the state directories: a preview's lies inside production's)."""

    def files(
        self, version: str, status: Mapping[str, Any], approved: ArtifactDigests | None, *, restore: bool
    ) -> SnapshotFiles:
        """The snapshot `version` runs from: the kept one (per the supervisor's `status`), or captured
        now (a deploy, or a retired release whose files `local.source` holds again). Raises DeployError."""
        kept = next((r for r in status.get("releases", []) if r["version"] == version), None)
        try:
            if kept is not None and kept.get("tree_digest"):
                directory = Path(kept["release_dir"])
                gated = _listed(kept.get("gated", ()))
                if approved is not None:
                    gated = _triples(self._gated(approved, directory, version))
                return SnapshotFiles(directory, str(kept["tree_digest"]), gated)
            if restore and kept is not None:
                # Recorded before snapshots: it may go on running, but it is never started from the workspace.
                return SnapshotFiles(None, "", ())
            remembered = next((r for r in status.get("retired", []) if r["version"] == version), None)
            if restore and remembered is None:
                raise SnapshotError(
                    f"release {version} is not kept here and nothing records its files; roll back to a kept "
                    "release, or deploy it again"
                )
            directory = self.paths.releases / version
            linkable = (
                approved_migration_paths(approved, workspace=self.workspace, source=self.source) if approved else ()
            )
            captured = capture(
                self.source,
                directory,
                leave_out=self.leave_out,
                version=version,
                link_from=_link_base(status),
                linkable=linkable,
            )
            digest = captured.digest
            if restore and remembered is not None and digest != remembered["tree_digest"]:
                remove(directory)
                raise SnapshotError(
                    f"release {version} was retired and its snapshot removed, and local.source ({self.source}) "
                    f"now holds other files (digest {digest}; {version} had {remembered['tree_digest']}); "
                    f"check out {version}'s commit to roll back to it, or raise rollback.keep_previous_versions "
                    "to keep more releases ready"
                )
            try:
                gated = ()
                if approved is not None:
                    gated = _triples(self._gated(approved, directory, version, captured.files))
            except SnapshotError:
                remove(directory)
                raise
            if restore and remembered is not None:
                gated = _listed(remembered.get("gated", ()))
            log.info("release %s captured in %s (digest %s)", version, directory, digest)
            return SnapshotFiles(directory, digest, gated)
        except SnapshotError as exc:
            raise DeployError(str(exc), platform="local", operation="rollback" if restore else "start") from exc

    def run_dir(self, release_dir: Path) -> Path:
        """`local.cwd`, moved from `local.source` into the snapshot (default: the snapshot itself)."""
        if self.cwd is None:
            return release_dir
        try:
            return release_dir / self.cwd.relative_to(self.source)
        except ValueError:
            raise DeployError(
                f"local.cwd {self.cwd} is outside local.source {self.source}: releases run from their "
                "captured files, so put cwd inside source",
                platform="local",
                operation="start",
            ) from None

    def _gated(
        self, approved: ArtifactDigests, directory: Path, version: str, captured: Mapping[str, str] | None = None
    ) -> dict[str, dict[str, str]]:
        return check_gated(
            approved,
            workspace=self.workspace,
            source=self.source,
            snapshot=directory,
            version=version,
            captured=captured,
        )


def _link_base(status: Mapping[str, Any]) -> Path | None:
    """The snapshot a new capture links its unchanged migration files from: the live release's, else a kept one's.
    Kept releases only: a retired one's snapshot may be being removed. Its files need not be intact: each
    is linked only if its bytes are the source file's."""
    kept = [r for r in status.get("releases", []) if r.get("release_dir") and r.get("tree_digest")]
    live = [r for r in kept if r["version"] == status.get("live")]
    return Path((live or kept)[0]["release_dir"]) if kept else None


def _listed(triples: Any) -> tuple[tuple[str, str, str], ...]:
    return tuple((str(a), str(b), str(c)) for a, b, c in triples)


def _triples(covered: Mapping[str, Mapping[str, str]]) -> tuple[tuple[str, str, str], ...]:
    return tuple((section, key, digest) for section, pairs in covered.items() for key, digest in sorted(pairs.items()))
