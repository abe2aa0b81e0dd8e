"""`HostsPlatform`: the `Platform` adapter for a set of servers, each running the local supervisor and proxy.

Traffic is split by host: a host routes all its traffic to one release, and the load balancer in
front (`hosts.public_url`) spreads users over the hosts. So a split moves whole hosts, in units of
`hosts.max_parallel` hosts or of a `hosts.group_by` label's groups, canary hosts first (`order`).
Blue/green moves every host at once (every host stages the switch, then all are fired back to
back: `Fleet.switch`; each answer carries that host's switch time, and their spread is
`last_switch_skew_ms`), rolling moves a step's units after re-checking the release on each host,
canary moves the units its weight rounds to.

A switch that fails on any host puts the hosts it had moved back before raising (the rollout has
not yet counted it as moved). A host lost on the way is named in the error and left as it is: the
next run's `Fleet.ready` reconciles it to the release the host set last agreed on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.artifacts import ArtifactDigests
from orchestrator.errors import DeployError
from orchestrator.platform_outputs import PlatformOutputs
from orchestrator.platforms.base import Release, TrafficShape
from orchestrator.platforms.hosts.connection import HostConnection
from orchestrator.platforms.hosts.fleet import Fleet, HostStatus
from orchestrator.platforms.hosts.host_image import is_image_release, pinned_digest
from orchestrator.platforms.hosts.image_upload import SavedImage, save_image
from orchestrator.platforms.hosts.order import moved_hosts, units
from orchestrator.platforms.hosts.release_files import ReleaseFiles, pack
from orchestrator.platforms.hosts.settings import HostsConfig
from orchestrator.platforms.hosts.tunnel import Tunnel
from orchestrator.platforms.local.state import check_version

__all__ = ["HostsPlatform"]

log = logging.getLogger(__name__)

_START_MARGIN_SECONDS = 30.0
_PULL_MARGIN_SECONDS = 600.0


class HostsPlatform:
    name = "hosts"

    def __init__(
        self,
        config: HostsConfig,
        fleet: Fleet,
        *,
        source: Path,
        workspace: Path,
        startup: float,
        command: tuple[str, ...] = (),
    ) -> None:
        self._config = config
        self._command = command
        """`local.command`: naming `{image}`, it makes a release with an image an image release."""
        self._saved: dict[str, SavedImage] = {}
        self.fleet = fleet
        self._source = source
        self._workspace = workspace
        self._staging = workspace / ".deploy-orchestrator" / "hosts"
        self._startup = startup
        self._approved: dict[str, ArtifactDigests] = {}
        self._files: dict[str, ReleaseFiles] = {}
        self._tunnels: list[Tunnel] = []
        self.last_switch_skew_ms: float | None = None
        self.last_delivery_skew_ms: float | None = None
        """The spread of the moments the hosts received the `fire` (the rest is each host's own switch)."""
        self._routed: dict[str, dict[str, int]] = {}
        """The table each host was last sent in this run (its status only says which release had all)."""

    # --- Platform ---------------------------------------------------------------------------------

    def live(self) -> Release | None:
        """The release the host set last switched to as a whole, or None before the first deploy. Read-only
        (a host that missed that switch is reconciled by the next call that changes something)."""
        self.fleet.ready(reconcile=False)
        agreed = self.fleet.agreed()
        if agreed is None or agreed.recorded is None:
            return None
        return next((r for r in self.releases() if r.version == agreed.recorded), Release(agreed.recorded))

    def live_url(self) -> str:
        return self._config.public_url

    def releases(self) -> list[Release]:
        """Releases every host keeps, newest first (as the first host orders them). Read-only."""
        self.fleet.ready(reconcile=False)
        statuses = list(self.fleet.statuses.values())
        if not statuses:
            return []
        everywhere = [r for r in statuses[0].releases if all(s.keeps(r["version"]) for s in statuses)]
        return [Release(r["version"], image=r["image"], ref=f"hosts:{len(statuses)}") for r in everywhere]

    def start(self, version: str, image: str | None) -> Release:
        """Start `version` on every host without traffic and check its health on each. Idempotent per version.

        The snapshot is uploaded to a host unless it already keeps it with the same tree digest. If any
        host fails, the release is stopped on the others and DeployError names the failing hosts.
        `Release.url` reaches the first host's release through an SSH tunnel.
        """
        version = self._check(version, "start")
        image_release = self._image_release(version, image)
        self.fleet.ready()
        files = self._pack(version)
        outcome = self.fleet.each(lambda c: self._start_on(c, files, image, image_release))
        if outcome.failures:
            self.fleet.each(lambda c: c.call("stop", version=version), [c for c in self.fleet.connections if c.is_open])
        outcome.raise_first(f"starting {version}")
        self.fleet.refresh()
        first = self.fleet.connections[0]
        tunnel = Tunnel(first.transport(), int(outcome.answers[first.name]["port"]))
        self._tunnels.append(tunnel)
        return Release(version, url=tunnel.url, image=image, ref=f"hosts:{len(self.fleet.connections)}")

    def _start_on(
        self, connection: HostConnection, files: ReleaseFiles, image: str | None, image_release: dict[str, Any] | None
    ) -> object:
        status = self.fleet.statuses[connection.name]
        kept = next((r for r in status.releases if r["version"] == files.version), None)
        timeout = self._startup + _START_MARGIN_SECONDS
        sent: dict[str, Any] = {}
        if image_release is not None:
            sent["image_release"] = self._image_for(connection, files.version, image_release)
            timeout += _PULL_MARGIN_SECONDS
        if kept is None or kept["tree_digest"] != files.tree_digest:
            remote = f"{connection.root}/uploads/{files.version}.tar"
            connection.upload(files.tarball, remote)
            sent.update(tarball=remote, sha256=files.sha256)
        return connection.call(
            "start", version=files.version, image=image, tree_digest=files.tree_digest, timeout=timeout, **sent
        )

    def _image_release(self, version: str, image: str | None) -> dict[str, Any] | None:
        """How an image release's image reaches the hosts (None: not an image release). Raises DeployError
        before any host is touched for an image the hosts could not be held to."""
        if image is None or not is_image_release(self._command, image):
            return None
        if self._config.image_transfer == "pull":
            if pinned_digest(image) is None:
                raise DeployError(
                    f"release {version}: image {image} is given by tag, and the hosts pull an image release by "
                    "digest: pin it (name@sha256:...), or set hosts.image_transfer: upload",
                    platform="hosts",
                    operation="start",
                )
            return {"transfer": "pull", "reference": image}
        if version not in self._saved:
            self._saved[version] = save_image(image, self._staging / "images" / f"{version}.tar")
        saved = self._saved[version]
        return {"transfer": "upload", "reference": image, "id": saved.image_id, "sha256": saved.sha256}

    def _image_for(self, connection: HostConnection, version: str, image_release: dict[str, Any]) -> dict[str, Any]:
        """`image_release` for one host: with the archive sent there, unless it holds that image already."""
        if image_release["transfer"] != "upload" or connection.call("has_image", image_id=image_release["id"]):
            return image_release
        remote = f"{connection.root}/uploads/{version}.image.tar"
        connection.upload(self._saved[version].archive, remote)
        return {**image_release, "archive": remote}

    def pin_artifacts(self, version: str, digests: ArtifactDigests) -> None:
        """The gate approved `digests`: the snapshot sent to the hosts must hold exactly these copies."""
        self._approved[self._check(version, "start")] = digests
        self._files.pop(version, None)

    def _pack(self, version: str) -> ReleaseFiles:
        if version not in self._files:
            self._files[version] = pack(
                version,
                source=self._source,
                workspace=self._workspace,
                staging=self._staging,
                approved=self._approved.get(version),
            )
        return self._files[version]

    def rollback(self, to: Release) -> None:
        """Every reachable host back on `to` (from its kept snapshot), all at once. Raises DeployError
        naming the hosts it could not reach (the others are back on `to`)."""
        version = self._check(to.version, "rollback")
        self.fleet.ready(reconcile=False, tolerate_lost=True)
        reachable = [c for c in self.fleet.connections if c.is_open]
        self.fleet.generation += 1
        commit = self.fleet.generation
        outcome = self.fleet.switch(
            lambda _c: ("arm_rollback", {"version": version, "commit": commit}),
            reachable,
            # A host whose copy of `to` is down starts it from its snapshot first, then switches.
            otherwise=lambda c: c.call("rollback", version=version, image=to.image, commit=commit, timeout=60),
            # A host lost while staging must not keep the others on the release being left.
            all_or_nothing=False,
        )
        self._note_skew(outcome.answers)
        for name in outcome.answers:
            self._routed[name] = {version: 100}
        for name in outcome.failures:
            self._routed.pop(name, None)
        self.fleet.refresh(strict=False)
        missed = [c.name for c in self.fleet.connections if not c.is_open or c.name in outcome.failures]
        if missed:
            told = "; ".join(str(exc) for exc in outcome.failures.values())
            raise DeployError(
                f"rolled back to {version} on {', '.join(outcome.answers) or 'no host'}; not on {', '.join(missed)}, "
                f"unreachable (lost in this run; left for the next run to reconcile){': ' + told if told else ''}",
                platform="hosts",
                operation="rollback",
            )

    # --- TrafficRouter ----------------------------------------------------------------------------

    def traffic_shape(self) -> TrafficShape:
        """By host: shares move whole hosts, `max_parallel` at a time (one step per group of hosts).
        By weight: every host's proxy splits its own traffic, to the percent."""
        if self._config.split == "weight":
            return TrafficShape(replicas=1, exact=True)
        return TrafficShape(replicas=len(self._units()), exact=False)

    def _units(self) -> list[tuple[str, ...]]:
        c = self._config
        return units(c.hosts, canary_labels=dict(c.canary_labels), group_by=c.group_by, max_parallel=c.max_parallel)

    def start_sized(self, version: str, image: str | None, weight: int) -> Release:
        return self.start(version, image)

    def route(self, weights: Mapping[str, int]) -> None:
        """Split traffic as `weights` says: by moving hosts, or on every host (`hosts.split`). Idempotent.

        By host, with two releases, the first units of hosts (`order`: canary hosts first, then config
        order, `max_parallel` or a `group_by` group at a time) take the new (the second) one. A host
        about to take a release it did not serve has it re-checked there first. Raises DeployError naming
        the failing hosts, after putting back the hosts this call had changed.
        """
        self.fleet.ready()
        target = self._tables(weights)
        current = {
            c.name: self._routed.get(c.name) or _whole(_live(self.fleet.statuses.get(c.name)))
            for c in self.fleet.connections
        }
        changing = [c for c in self.fleet.connections if current[c.name] != target[c.name]]
        whole = all(len(table) == 1 for table in target.values()) and len({*map(str, target.values())}) == 1
        commit = self.fleet.generation + 1 if whole else None
        if not whole:
            self.fleet.each(
                lambda c: [c.call("check", version=v) for v in target[c.name] if v not in current[c.name]], changing
            ).raise_first("checking")
        outcome = self.fleet.switch(lambda c: ("arm", {"weights": target[c.name], "commit": commit}), changing)
        if outcome.failures:
            back = [c for c in changing if c.name in outcome.answers and current[c.name]]
            self.fleet.each(lambda c: c.call("route", weights=current[c.name]), back)
            outcome.raise_first("switching")
        self._routed.update((c.name, target[c.name]) for c in changing)
        if commit is not None:
            self.fleet.generation = commit
        self._note_skew(outcome.answers)
        # Traffic moved: a host lost just now must not make the switch look undone (the rollback must
        # know to put it back), so read what is reachable; the next call that needs every host says so.
        self.fleet.refresh(strict=False)

    def _tables(self, weights: Mapping[str, int]) -> dict[str, dict[str, int]]:
        """The routing table each host gets for `weights`."""
        names = [c.name for c in self.fleet.connections]
        full = [v for v, w in weights.items() if w == 100]
        if full:
            return {name: {full[0]: 100} for name in names}
        if self._config.split == "weight":
            return {name: {v: w for v, w in weights.items() if w > 0} for name in names}
        (old, _), (new, weight) = list(weights.items())
        moving = moved_hosts(self._units(), weight)
        return {name: {new if name in moving else old: 100} for name in names}

    def _note_skew(self, answers: Mapping[str, object]) -> None:
        times = [float(a["at"]) for a in answers.values() if isinstance(a, dict) and "at" in a]
        received = [float(a["received"]) for a in answers.values() if isinstance(a, dict) and "received" in a]
        if len(received) > 1:
            self.last_delivery_skew_ms = (max(received) - min(received)) * 1000
        if len(times) > 1:
            self.last_switch_skew_ms = (max(times) - min(times)) * 1000
            log.info("hosts switched within %.1f ms of each other", self.last_switch_skew_ms)

    # --- Retirement -------------------------------------------------------------------------------

    def retire(self, keep: int) -> list[str]:
        """Stop releases without traffic beyond the newest `keep` on every host; the versions stopped anywhere."""
        self.fleet.ready()
        outcome = self.fleet.each(lambda c: c.call("retire", keep=keep, timeout=120))
        outcome.raise_first("retire")
        self.fleet.refresh()
        return sorted({v for stopped in outcome.answers.values() for v in stopped})

    def stop(self, version: str) -> None:
        """Stop one release without traffic on every host. Idempotent."""
        version = self._check(version, "stop")
        self.fleet.ready()
        self.fleet.each(lambda c: c.call("stop", version=version, timeout=120)).raise_first(f"stopping {version}")
        self.fleet.refresh()

    # --- ReportsOutputs -------------------------------------------------------------------------

    def run_outputs(self) -> PlatformOutputs | None:
        """Per host, what keeps its supervisor (a systemd unit, or nothing); the last switch's spread."""
        lines = [f"host {c.name}: {c.keeper['detail']}" for c in self.fleet.connections if c.keeper]
        if self.last_switch_skew_ms is not None:
            lines.append(f"last switch: every host within {self.last_switch_skew_ms:.1f} ms of the first")
        if not lines:
            return None
        text = "\n".join(lines)
        return PlatformOutputs(deploy_logs=text, printed=(("hosts", text),))

    def close(self) -> None:
        for tunnel in self._tunnels:
            tunnel.close()
        self.fleet.close()

    @staticmethod
    def _check(version: str, operation: str) -> str:
        try:
            return check_version(version)
        except ValueError as exc:
            raise DeployError(str(exc), platform="hosts", operation=operation) from exc


def _live(status: HostStatus | None) -> str | None:
    return status.live if status is not None else None


def _whole(version: str | None) -> dict[str, int]:
    return {version: 100} if version else {}
