"""What runs ON a host: the orchestrator's hand there, driving that host's local supervisor.

The deploying orchestrator starts it over SSH (`python orchestrator.pyz --root R`) and speaks JSON
lines on its stdin/stdout, one request and one answer at a time; it ends when stdin closes (the SSH
session is gone). The supervisor and proxy it starts are the `local` platform's, detached, so they
outlive it. Every answer is `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`.

A release arrives as a tarball of its snapshot: `start` holds it to the sha256 it was sent with,
unpacks it, lets the local platform capture it and holds that capture to the tree digest taken on
the deploying side, and checks the release's health on this host, before anything routes to it.
A switch is staged first (`arm`, `arm_rollback`: see `switch`) and fired by a one-line `fire`; with a
`commit` it also writes the fleet record (`fleet.json`: which release the whole host set last
switched to, and the generation of that switch) that reconciles a host lost mid-roll.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from orchestrator.contract import LocalConfig
from orchestrator.errors import OrchestratorError
from orchestrator.platforms.base import Release
from orchestrator.platforms.hosts.host_image import ImageRefused, prepare_image, substitute
from orchestrator.platforms.hosts.switch import ArmedSwitch, SwitchRefused
from orchestrator.platforms.hosts.systemd_unit import Keeper, keep_supervisor, supervisor_unit
from orchestrator.platforms.local.control import ControlClient, SupervisorNotRunningError
from orchestrator.platforms.local.platform import LocalPlatform
from orchestrator.platforms.local.state import StatePaths, check_version

__all__ = ["Agent", "main"]

log = logging.getLogger(__name__)


class AgentError(Exception):
    """A refusal the deploying side shows as it is."""


class Agent:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self.sources = root / "sources"
        self.uploads = root / "uploads"
        self.record = root / "fleet.json"
        self._config: LocalConfig | None = None
        self._health: dict[str, Any] = {}
        self._routing: LocalPlatform | None = None
        self._armed: tuple[ArmedSwitch, int | None] | None = None
        self._engine: str | None = None

    def handle(self, request: dict[str, Any]) -> Any:
        op = request.pop("op")
        if op != "fire":
            # Only the very next request may fire a staged switch: anything else means it was called off.
            self.disarm()
        method = getattr(self, f"op_{op}", None)
        if method is None:
            raise AgentError(f"unknown operation {op!r}")
        return method(**request)

    # --- operations ------------------------------------------------------------------------------

    def op_configure(
        self, local: dict[str, Any], health: dict[str, Any], systemd: bool = True, container_engine: str | None = None
    ) -> dict[str, Any]:
        self._config = LocalConfig(
            command=tuple(local["command"]),
            listen=local["listen"],
            state_dir=self.state,
            cwd=Path(local["cwd"]) if local.get("cwd") else None,
            env=tuple((str(k), str(v)) for k, v in local["env"]),
            replicas=int(local["replicas"]),
            drain_seconds=float(local["drain_seconds"]),
            startup_timeout_seconds=float(local["startup_timeout_seconds"]),
            proxy=local["proxy"],
            max_connections=int(local["max_connections"]),
        )
        self._health = health
        self._engine = container_engine
        self._routing = None
        for folder in (self.state, self.sources, self.uploads):
            folder.mkdir(parents=True, exist_ok=True)
        keeper = keep_supervisor(StatePaths(self.state), supervisor_unit(self._config, self.state)) if systemd else None
        return {
            "python": list(sys.version_info[:3]),
            "root": str(self.root),
            "keeper": (keeper or Keeper("none", "hosts.systemd is off: the supervisor runs detached")).to_dict(),
        }

    def op_status(self) -> dict[str, Any]:
        platform = self._platform(None)
        live = platform.live()
        kept = self._kept()
        releases = [
            {"version": r.version, "image": r.image, "tree_digest": kept.get(r.version, "")}
            for r in platform.releases()
        ]
        return {"live": live.version if live else None, "releases": releases, "record": self._read_record()}

    def op_start(
        self,
        version: str,
        image: str | None,
        tree_digest: str,
        tarball: str | None = None,
        sha256: str | None = None,
        image_release: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Unpack and check the release's files (and its image, for an image release), start it, check
        its health here. `image_release` (`host_image`): how its image arrives and what it must be."""
        version = check_version(version)
        if tarball is not None and sha256 is not None:
            self._unpack(version, Path(tarball), sha256)
        elif not (self.sources / version).is_dir():
            raise AgentError(f"release {version} was never uploaded to this host")
        platform = self._platform(version)
        if image_release is not None:
            assert self._config is not None, "configured by _platform"
            try:
                image_id, engine = prepare_image(image_release, self._engine)
            except ImageRefused as exc:
                raise AgentError(f"release {version}: {exc}") from None
            command = substitute(self._config.command, image_id, engine)
            platform = LocalPlatform(dataclasses.replace(self._config, command=command), self.sources / version)
        release = platform.start(version, image)
        captured = self._kept().get(version, "")
        if captured != tree_digest:
            self._platform(version).stop(version)
            raise AgentError(
                f"release {version}: the files captured here have tree digest {captured or 'none'}, not "
                f"{tree_digest} as validated; refusing to run them (stopped): deploy it again"
            )
        self._check(release)
        return {"version": version, "port": _port(release)}

    def op_has_image(self, image_id: str) -> bool:
        """Whether this host's engine holds `image_id` already (so its archive need not be sent)."""
        try:
            return (
                prepare_image({"transfer": "upload", "reference": image_id, "id": image_id}, self._engine)[0]
                == image_id
            )
        except ImageRefused:
            return False

    def op_check(self, version: str) -> str:
        """The release's health on this host, once more (before a host is moved to it)."""
        release = next((r for r in self._platform(None).releases() if r.version == version), None)
        if release is None:
            raise AgentError(f"release {version} does not run on this host")
        self._check(release)
        return "healthy"

    def op_route(self, weights: dict[str, int], commit: int | None = None) -> dict[str, Any]:
        self._platform(None).route(weights)
        at = time.time()
        if commit is not None:
            self._write_record(commit, next(v for v, w in weights.items() if w == 100))
        return {"at": at}

    def op_arm(self, weights: dict[str, int], commit: int | None = None) -> dict[str, Any]:
        """Stage `weights` (checked against what runs here) for the next `fire`. Changes nothing."""
        running = {r.version for r in self._platform(None).releases()}
        self._armed = (ArmedSwitch(self._platform(None).paths, weights, running, fallback=self._route), commit)
        return {"armed": True}

    def op_arm_rollback(self, version: str, commit: int) -> dict[str, Any]:
        """Stage all traffic to `version` if every replica of it runs here; otherwise say so (the
        deploying side then sends `rollback`, which starts it again from its snapshot first)."""
        version = check_version(version)
        alive = {r["version"] for r in self._supervisor_status().get("releases", []) if r.get("alive")}
        if version not in alive:
            return {"armed": False}
        return self.op_arm({version: 100}, commit)

    def op_fire(self) -> dict[str, Any]:
        received = time.time()
        if self._armed is None:
            raise AgentError("no switch is armed on this host (arm first)")
        (armed, commit), self._armed = self._armed, None
        try:
            at = armed.fire()
        except SwitchRefused as exc:
            raise AgentError(str(exc)) from None
        if commit is not None:
            self._write_record(commit, next(v for v, w in armed.weights.items() if w == 100))
        return {"at": at, "received": received}

    def disarm(self) -> None:
        if self._armed is not None:
            self._armed[0].disarm()
            self._armed = None

    def op_disarm(self) -> None:
        """Drop a staged switch (`handle` already did)."""

    def op_rollback(self, version: str, image: str | None, commit: int) -> dict[str, Any]:
        version = check_version(version)
        self._platform(version if (self.sources / version).is_dir() else None).rollback(Release(version, image=image))
        at = time.time()
        self._write_record(commit, version)
        return {"at": at}

    def op_retire(self, keep: int) -> list[str]:
        stopped = self._platform(None).retire(keep)
        for version in stopped:
            shutil.rmtree(self.sources / version, ignore_errors=True)
        return stopped

    def op_stop(self, version: str) -> None:
        self._platform(None).stop(version)

    # --- helpers ---------------------------------------------------------------------------------

    def _platform(self, version: str | None) -> LocalPlatform:
        """The local platform; for `version`, with that release's uploaded files as its source."""
        if self._config is None:
            raise AgentError("configure first")
        if version is not None:
            return LocalPlatform(self._config, self.sources / version)
        if self._routing is None:
            # Kept: it holds its connection to the supervisor, so a switch is one call, not two.
            self._routing = LocalPlatform(self._config, self.root)
        return self._routing

    def _route(self, weights: dict[str, int]) -> None:
        self._platform(None).route(weights)

    def _supervisor_status(self) -> dict[str, Any]:
        try:
            status: dict[str, Any] = ControlClient(self._platform(None).paths).call("status")
        except SupervisorNotRunningError:
            return {}
        return status

    def _kept(self) -> dict[str, str]:
        """Tree digests of the releases the supervisor keeps."""
        return {r["version"]: str(r.get("tree_digest") or "") for r in self._supervisor_status().get("releases", [])}

    def _unpack(self, version: str, tarball: Path, sha256: str) -> None:
        actual = _sha256(tarball)
        if actual != sha256:
            tarball.unlink(missing_ok=True)
            raise AgentError(f"release {version}: the upload has sha256 {actual}, not {sha256} as sent; refused")
        target = self.sources / version
        incoming = self.sources / f".incoming-{version}-{os.getpid()}"
        shutil.rmtree(incoming, ignore_errors=True)
        try:
            with tarfile.open(tarball) as archive:
                _extract(archive, incoming)
        except tarfile.TarError as exc:
            shutil.rmtree(incoming, ignore_errors=True)
            raise AgentError(f"release {version}: the upload cannot be unpacked here ({exc}); refused") from exc
        shutil.rmtree(target, ignore_errors=True)
        incoming.rename(target)
        tarball.unlink()

    def _check(self, release: Release) -> None:
        """GET the health endpoint on the release's own port until it answers as expected, or refuse."""
        url = f"{release.url}{self._health['endpoint']}"
        expected = int(self._health["expected_status"])
        last = ""
        for attempt in range(int(self._health["retries"]) + 1):
            if attempt:
                time.sleep(float(self._health["interval_seconds"]))
            try:
                with urllib.request.urlopen(url, timeout=float(self._health["timeout_seconds"])) as answer:
                    status = int(answer.status)
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError as exc:
                last = str(exc)
                continue
            if status == expected:
                return
            last = f"status {status}, expected {expected}"
        raise AgentError(f"release {release.version} is not healthy on this host ({url}): {last}")

    def _read_record(self) -> dict[str, Any] | None:
        try:
            record: dict[str, Any] = json.loads(self.record.read_text())
        except FileNotFoundError:
            return None
        return record

    def _write_record(self, generation: int, live: str) -> None:
        incoming = self.record.with_name(f".fleet-{os.getpid()}.json")
        incoming.write_text(json.dumps({"generation": generation, "live": live}))
        incoming.replace(self.record)


def _extract(archive: tarfile.TarFile, destination: Path) -> None:
    """Unpack, refusing members that would land outside `destination` (before Python 3.11.4 has filters)."""
    if hasattr(tarfile, "tar_filter"):
        archive.extractall(destination, filter="tar")
        return
    for member in archive.getmembers():
        name = Path(member.name)
        if name.is_absolute() or ".." in name.parts or (member.issym() and Path(member.linkname).is_absolute()):
            raise AgentError(f"the upload holds {member.name!r}, outside the release; refused")
    archive.extractall(destination)


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _port(release: Release) -> int:
    return int(str(release.url).rsplit(":", 1)[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="deploy-orchestrator's agent on a hosts-platform server")
    parser.add_argument("--root", required=True, type=Path)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=root / "agent.log", level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    agent = Agent(root)
    out = sys.stdout
    for line in sys.stdin:
        try:
            answer = {"ok": True, "result": agent.handle(json.loads(line))}
        except (AgentError, OrchestratorError, ValueError, OSError) as exc:
            log.warning("refused: %s", exc)
            answer = {"ok": False, "error": str(exc)}
        out.write(json.dumps(answer) + "\n")
        out.flush()
    agent.disarm()
    return 0


if __name__ == "__main__":
    sys.exit(main())
