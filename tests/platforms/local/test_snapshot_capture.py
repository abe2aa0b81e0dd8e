"""Capturing a snapshot reads each file once, and what it reports is what a fresh walk of the copy finds."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from orchestrator.artifacts import ArtifactDigests
from orchestrator.platforms.local.snapshot import (
    SnapshotError,
    approved_migration_paths,
    capture,
    check_gated,
    digest_tree,
    purge_bytecode,
)


def _tree(root: Path) -> None:
    (root / "db" / "nested").mkdir(parents=True)
    (root / "db" / "V1__a.sql").write_text("CREATE TABLE a (id int);\n")
    (root / "db" / "nested" / "V2__b.sql").write_bytes(b"\xef\xbb\xbfCREATE TABLE b (id int);\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "big.bin").write_bytes(os.urandom(3 << 20))  # several read chunks
    (root / "empty").write_bytes(b"")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "x.pyc").write_bytes(b"compiled")
    (root / "stale.pyc").write_bytes(b"compiled")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")


def test_the_capture_digest_is_the_digest_of_the_copy(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    _tree(source)
    captured = capture(source, tmp_path / "releases" / "v1", version="v1")
    copy = tmp_path / "releases" / "v1"
    assert captured.digest == digest_tree(copy, version="v1")
    assert set(captured.files) == {"db/V1__a.sql", "db/nested/V2__b.sql", "run.sh", "big.bin", "empty"}
    for relative, sha in captured.files.items():
        assert sha == hashlib.sha256((copy / relative).read_bytes()).hexdigest()
        assert (copy / relative).stat().st_mode == (source / relative).stat().st_mode
        assert (copy / relative).stat().st_mtime_ns == (source / relative).stat().st_mtime_ns
    assert not (copy / ".git").exists() and not (copy / "__pycache__").exists() and not (copy / "stale.pyc").exists()


def test_a_tree_with_links_is_digested_where_the_links_now_point(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    _tree(source)
    (source / "latest.sql").symlink_to("db/V1__a.sql")
    (source / "absolute").symlink_to(source / "run.sh")
    captured = capture(source, tmp_path / "releases" / "v1", version="v1")
    assert captured.digest == digest_tree(tmp_path / "releases" / "v1", version="v1")
    assert os.readlink(tmp_path / "releases" / "v1" / "absolute") == "run.sh"


def test_a_link_into_what_is_left_out_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    _tree(source)
    (source / "head").symlink_to(".git/HEAD")  # inside the source, but .git is never captured
    with pytest.raises(SnapshotError, match="head"):
        capture(source, tmp_path / "releases" / "v1", version="v1")
    assert not (tmp_path / "releases" / "v1").exists()


def test_the_gate_check_uses_the_capture_hashes_and_still_refuses_a_difference(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    _tree(source)
    copy = tmp_path / "releases" / "v1"
    captured = capture(source, copy, version="v1")
    good = hashlib.sha256((source / "db" / "V1__a.sql").read_bytes()).hexdigest()
    approved = ArtifactDigests(migrations=(("src/db/V1__a.sql", good),), modules=(), image=None, image_pinned=False)
    covered = check_gated(
        approved, workspace=tmp_path, source=source, snapshot=copy, version="v1", captured=captured.files
    )
    assert covered["migrations"] == {"src/db/V1__a.sql": good}
    edited = ArtifactDigests(migrations=(("src/db/V1__a.sql", "0" * 64),), modules=(), image=None, image_pinned=False)
    with pytest.raises(SnapshotError, match="not the ones the gate approved"):
        check_gated(edited, workspace=tmp_path, source=source, snapshot=copy, version="v1", captured=captured.files)


def test_purge_bytecode_clears_compiled_files_everywhere_but_through_a_symlink(tmp_path: Path) -> None:
    release, outside = tmp_path / "release", tmp_path / "outside"
    (release / "pkg" / "__pycache__").mkdir(parents=True)
    (release / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"compiled")
    (release / "pkg" / "planted.pyc").write_bytes(b"compiled")
    (release / "pkg" / "mod.py").write_text("x = 1\n")
    outside.mkdir()
    (outside / "kept.pyc").write_bytes(b"not the release's")
    os.symlink(outside, release / "linked")

    purge_bytecode(release)

    assert not (release / "pkg" / "__pycache__").exists() and not (release / "pkg" / "planted.pyc").exists()
    assert (release / "pkg" / "mod.py").exists() and (outside / "kept.pyc").exists()


def test_unchanged_files_are_linked_from_the_earlier_snapshot_and_the_rest_copied(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    _tree(source)
    (source / "touched.txt").write_text("same bytes\n")
    (source / "tampered.txt").write_text("original\n")
    first = tmp_path / "releases" / "v1"
    capture(source, first, version="v1")
    (source / "db" / "V1__a.sql").write_text("CREATE TABLE a (id bigint);\n")  # changed
    os.utime(source / "touched.txt", ns=(1, 1))  # same bytes, another mtime
    kept = (first / "tampered.txt").stat()
    (first / "tampered.txt").write_text("EVIL!!!!\n")  # same size and times, other bytes
    os.utime(first / "tampered.txt", ns=(kept.st_atime_ns, kept.st_mtime_ns))
    second = tmp_path / "releases" / "v2"

    everything = {"run.sh", "db/nested/V2__b.sql", "big.bin", "empty", "db/V1__a.sql", "touched.txt", "tampered.txt"}
    captured = capture(source, second, version="v2", link_from=first, linkable=everything)

    def shared(relative: str) -> bool:
        return (first / relative).stat().st_ino == (second / relative).stat().st_ino

    assert shared("run.sh") and shared("db/nested/V2__b.sql") and shared("big.bin") and shared("empty")
    assert not shared("db/V1__a.sql") and not shared("touched.txt") and not shared("tampered.txt")
    fresh = capture(source, tmp_path / "fresh", version="v2")
    assert captured.digest == digest_tree(second, version="v2") == fresh.digest
    for relative, sha in captured.files.items():
        assert sha == hashlib.sha256((second / relative).read_bytes()).hexdigest()
        assert (second / relative).read_bytes() == (source / relative).read_bytes()
        assert (second / relative).stat().st_mtime_ns == (source / relative).stat().st_mtime_ns


def test_a_missing_earlier_snapshot_means_a_plain_copy(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    _tree(source)
    captured = capture(source, tmp_path / "releases" / "v2", version="v2", link_from=tmp_path / "releases" / "gone")
    assert captured.digest == digest_tree(tmp_path / "releases" / "v2", version="v2")
    assert (tmp_path / "releases" / "v2" / "run.sh").stat().st_nlink == 1


def test_only_approved_migration_files_are_linked_so_a_release_writing_its_files_spares_the_earlier_one(
    tmp_path: Path,
) -> None:
    workspace = tmp_path / "ws"
    source = workspace / "app"
    source.mkdir(parents=True)
    _tree(source)
    approved = ArtifactDigests(
        migrations=(("app/db/V1__a.sql", "x"), ("app/db/nested/V2__b.sql", "y"), ("elsewhere/V9__z.sql", "z")),
        modules=(),
        image=None,
        image_pinned=False,
    )
    linkable = approved_migration_paths(approved, workspace=workspace, source=source)
    assert linkable == {"db/V1__a.sql", "db/nested/V2__b.sql"}
    first = tmp_path / "releases" / "v1"
    capture(source, first, version="v1")
    before = digest_tree(first, version="v1")
    second = tmp_path / "releases" / "v2"

    capture(source, second, version="v2", link_from=first, linkable=linkable)

    assert (first / "db" / "V1__a.sql").stat().st_ino == (second / "db" / "V1__a.sql").stat().st_ino
    assert (first / "run.sh").stat().st_ino != (second / "run.sh").stat().st_ino
    with open(second / "run.sh", "r+b") as written_in_place:  # the live release scribbles on its own file
        written_in_place.write(b"#!/bin/sh\nrm -rf /\n")
    assert digest_tree(first, version="v1") == before, "the release a rollback goes back to is untouched"
