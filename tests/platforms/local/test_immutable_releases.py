"""Immutable releases on local: each release runs from the snapshot of its files taken at deploy.

Real supervisor and release processes on loopback. The release is `app.py` in the workspace, which
answers with the letter written in its own source, so a test sees which files a process runs.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.artifacts import digest_artifacts
from orchestrator.contract import Artifacts
from orchestrator.errors import DeployError
from orchestrator.platforms.base import Release
from orchestrator.platforms.local import LocalPlatform, read_status, supervisor_status
from orchestrator.platforms.local.snapshot import digest_tree

Factory = Callable[..., LocalPlatform]

APP = """\
import http.server, json, sys
ANSWER = {answer!r}
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{"version": ANSWER}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""
COMMAND = (sys.executable, "{release_dir}/app.py", "{port}")


def write_app(workspace: Path, answer: str) -> None:
    (workspace / "app.py").write_text(APP.format(answer=answer))


def answer_of(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url + "/version", timeout=2) as response:
            return str(json.loads(response.read())["version"])
    except OSError:
        return None


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def pid_of(platform: LocalPlatform, version: str) -> int:
    status = read_status(platform.paths.root)
    assert status is not None
    return next(r.pid for r in status.releases if r.version == version)


def deploy(platform: LocalPlatform, version: str) -> Release:
    release = platform.start(version, None)
    platform.route({version: 100})
    return release


@pytest.fixture
def app_platform(tmp_path: Path, platform_factory: Factory) -> LocalPlatform:
    write_app(tmp_path, "A")
    return platform_factory(command=COMMAND)


def test_rollback_to_a_killed_release_runs_the_code_it_was_deployed_with(
    tmp_path: Path, app_platform: LocalPlatform
) -> None:
    platform = app_platform
    v1 = deploy(platform, "v1")
    assert answer_of(platform.live_url()) == "A"
    write_app(tmp_path, "B")
    deploy(platform, "v2")
    assert answer_of(platform.live_url()) == "B"

    os.killpg(pid_of(platform, "v1"), signal.SIGKILL)
    platform.rollback(v1)

    wait_for(lambda: answer_of(platform.live_url()) == "A")
    status = read_status(platform.paths.root)
    assert status is not None
    by_version = {r.version: r for r in status.releases}
    assert by_version["v1"].release_dir == str(platform.paths.releases / "v1")
    assert by_version["v1"].tree_digest == digest_tree(platform.paths.releases / "v1", version="v1")
    assert by_version["v1"].tree_digest != by_version["v2"].tree_digest


def test_a_crashed_replica_restarts_from_its_snapshot_not_the_workspace(
    tmp_path: Path, app_platform: LocalPlatform
) -> None:
    platform = app_platform
    deploy(platform, "v1")
    write_app(tmp_path, "B")  # the workspace moves on; v1 must not
    old = pid_of(platform, "v1")

    os.killpg(old, signal.SIGKILL)

    wait_for(lambda: pid_of(platform, "v1") != old and answer_of(platform.live_url()) is not None)
    assert answer_of(platform.live_url()) == "A"


def test_a_changed_snapshot_is_never_restarted_and_status_names_both_digests(app_platform: LocalPlatform) -> None:
    platform = app_platform
    v1 = deploy(platform, "v1")
    snapshot = platform.paths.releases / "v1"
    recorded = digest_tree(snapshot, version="v1")
    write_app(snapshot, "EVIL")
    tampered = digest_tree(snapshot, version="v1")
    old = pid_of(platform, "v1")

    os.killpg(old, signal.SIGKILL)

    def refused() -> bool:
        status = read_status(platform.paths.root)
        return status is not None and status.releases[0].not_restarted is not None

    wait_for(refused)
    status = read_status(platform.paths.root)
    assert status is not None
    reason = status.releases[0].not_restarted or ""
    assert recorded in reason and tampered in reason and "changed since it was captured" in reason
    assert not status.releases[0].alive and answer_of(platform.live_url()) != "EVIL"
    with pytest.raises(DeployError, match=f"recorded digest {recorded}, now {tampered}"):
        platform.rollback(v1)
    shown = supervisor_status(platform._config, platform._workspace)
    assert shown["releases"][0]["tree_digest"] == recorded


def test_a_missing_snapshot_is_refused(app_platform: LocalPlatform) -> None:
    platform = app_platform
    v1 = deploy(platform, "v1")
    recorded = digest_tree(platform.paths.releases / "v1", version="v1")
    os.killpg(pid_of(platform, "v1"), signal.SIGKILL)
    (platform.paths.releases / "v1" / "app.py").unlink()
    (platform.paths.releases / "v1").rmdir()

    with pytest.raises(DeployError, match=f"snapshot .* is missing .*recorded digest {recorded}"):
        platform.rollback(v1)


def test_a_retired_release_comes_back_only_with_the_same_files(tmp_path: Path, app_platform: LocalPlatform) -> None:
    platform = app_platform
    v1 = deploy(platform, "v1")
    v1_digest = digest_tree(platform.paths.releases / "v1", version="v1")
    write_app(tmp_path, "B")
    deploy(platform, "v2")
    assert platform.retire(keep=0) == ["v1"]
    assert not (platform.paths.releases / "v1").exists(), "retiring removes the snapshot"
    status = read_status(platform.paths.root)
    assert status is not None and [(r.version, r.tree_digest) for r in status.retired] == [("v1", v1_digest)]

    with pytest.raises(DeployError) as refused:
        platform.rollback(v1)
    message = str(refused.value)
    assert "v1 was retired" in message and v1_digest in message
    assert digest_tree(platform.paths.releases / "v2", version="v2") in message, "the workspace holds v2's files"
    assert answer_of(platform.live_url()) == "B", "the refusal touched nothing"
    assert not (platform.paths.releases / "v1").exists()

    write_app(tmp_path, "A")  # v1's commit checked out again
    platform.rollback(v1)
    assert answer_of(platform.live_url()) == "A"


def test_a_release_never_recorded_here_is_not_rolled_back_to(app_platform: LocalPlatform) -> None:
    platform = app_platform
    deploy(platform, "v1")
    with pytest.raises(DeployError, match="release v0 is not kept here and nothing records its files"):
        platform.rollback(Release("v0"))


def test_the_snapshot_must_hold_what_the_gate_approved(tmp_path: Path, app_platform: LocalPlatform) -> None:
    platform = app_platform
    (tmp_path / "db").mkdir()
    migration = tmp_path / "db" / "V1__init.sql"
    migration.write_text("CREATE TABLE t (id int);\n")
    approved = digest_artifacts(Artifacts(odoo_modules=(), migrations=(Path("db"),)), tmp_path)
    platform.pin_artifacts("v1", approved)
    migration.write_text("DROP TABLE important;\n")  # edited after the gates passed

    with pytest.raises(DeployError) as refused:
        platform.start("v1", None)
    approved_digest = dict(approved.migrations)["db/V1__init.sql"]
    assert f"approved {approved_digest}" in str(refused.value)
    assert not (platform.paths.releases / "v1").exists()
    assert platform.releases() == []

    migration.write_text("CREATE TABLE t (id int);\n")
    deploy(platform, "v1")
    status = read_status(platform.paths.root)
    assert status is not None
    assert status.releases[0].gated == (("migrations", "db/V1__init.sql", approved_digest),)


def test_one_label_names_one_set_of_files(tmp_path: Path, app_platform: LocalPlatform) -> None:
    platform = app_platform
    deploy(platform, "v1")
    write_app(tmp_path, "B")
    changed = digest_artifacts(Artifacts(odoo_modules=(), migrations=()), tmp_path)
    platform.pin_artifacts("v1", changed)
    # Kept v1 runs its own snapshot; starting "v1" again returns it unchanged, never B's files.
    platform.start("v1", None)
    assert answer_of(platform.live_url()) == "A"


def test_what_is_not_the_release_stays_out_of_the_snapshot(tmp_path: Path, app_platform: LocalPlatform) -> None:
    platform = app_platform
    for skipped in (".git", ".venv", "__pycache__"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "junk").write_text("x")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helper.py").write_text("X = 1\n")
    (tmp_path / "link.py").symlink_to(tmp_path / "lib" / "helper.py")
    deploy(platform, "v1")
    snapshot = platform.paths.releases / "v1"
    assert sorted(p.name for p in snapshot.iterdir()) == ["app.py", "lib", "link.py"]
    assert os.readlink(snapshot / "link.py") == "lib/helper.py", "links point into the snapshot"
    assert not (snapshot / "state").exists(), "the state dir is not captured into itself"


def test_a_symlink_leading_outside_the_source_is_refused(tmp_path: Path, platform_factory: Factory) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    write_app(workspace, "A")
    (workspace / "secrets").symlink_to("/etc")
    platform = LocalPlatform(platform_factory(command=COMMAND)._config, workspace)
    with pytest.raises(DeployError, match=r"symlink secrets in local\.source leads outside it"):
        platform.start("v1", None)


def test_retiring_prunes_snapshots_no_release_runs_from(app_platform: LocalPlatform) -> None:
    platform = app_platform
    orphan = platform.paths.releases / "v9"  # a run crashed between its capture and its start
    orphan.mkdir(parents=True)
    (orphan / "app.py").write_text("left behind")
    deploy(platform, "v1")
    assert platform.retire(keep=1) == []
    assert sorted(p.name for p in platform.paths.releases.iterdir()) == ["v1"]
