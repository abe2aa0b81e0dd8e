"""`LocalPlatform`: the adapter that drives the local supervisor (a `TrafficRouter` with `Retirement`
and `Previews`).

Read-only calls (`live`, `releases`) change nothing, but a supervisor that is gone while its state
remains is started again (re-adopted) by every call, read-only or not: it adopts the proxy process
and the replicas still running and restarts the others. Before the first deploy nothing is started.
Calls that change something start the supervisor first (detached; it outlives the orchestrator).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.artifacts import ArtifactDigests
from orchestrator.canary.policy import Stickiness
from orchestrator.canary.traffic import TrafficSample
from orchestrator.contract import LocalConfig
from orchestrator.errors import DeployError
from orchestrator.platforms.base import Release, TrafficShape
from orchestrator.platforms.local.control import (
    ControlClient,
    SupervisorNotRunningError,
    SupervisorStatus,
    ensure_supervisor,
    stop_supervisor,
)
from orchestrator.platforms.local.data_plane import DataPlane
from orchestrator.platforms.local.process import log_tail
from orchestrator.platforms.local.snapshot import SnapshotError, capture, check_gated, remove
from orchestrator.platforms.local.state import StatePaths, check_version, load_state
from orchestrator.platforms.local.targets import state_dir_of
from orchestrator.platforms.registry import PRODUCTION, Target

__all__ = ["LocalPlatform", "supervisor_status", "supervisor_stop"]

log = logging.getLogger(__name__)

_CONTROL_MARGIN_SECONDS = 10.0


class LocalPlatform:
    """Releases as local processes behind the supervisor's per-request proxy on `config.listen`."""

    name = "local"

    def __init__(
        self,
        config: LocalConfig,
        workspace: Path,
        *,
        withheld: frozenset[str] = frozenset(),
        leave_out: tuple[Path, ...] = (),
        target: Target = PRODUCTION,
    ) -> None:
        """`config` is the target's own (see `targets.config_for`); `leave_out` is never captured."""
        self._config = config
        self._target = target
        self._withheld = withheld
        self._workspace = Path(workspace)
        self.paths = StatePaths(state_dir_of(config, self._workspace))
        self._source = self._resolve(config.source) if config.source is not None else self._workspace.resolve()
        self._cwd = self._resolve(config.cwd) if config.cwd is not None else None
        self._client: ControlClient | None = None
        self._approved: dict[str, ArtifactDigests] = {}
        self._leave_out = (self.paths.root, *leave_out)
        """Never captured into a snapshot: the state dirs (a preview's lies inside production's)."""

    def _resolve(self, path: Path) -> Path:
        return _resolve(self._workspace, path)

    def _control(self) -> ControlClient:
        if self._client is None:
            self._client = ensure_supervisor(
                self.paths,
                self._config.listen,
                drain_seconds=self._config.drain_seconds,
                withheld=self._withheld,
                data_plane=DataPlane(self._config.proxy, self._config.max_connections),
            )
        return self._client

    def _call(self, op: str, timeout: float = 10.0, **args: Any) -> Any:
        try:
            return self._control().call(op, timeout=timeout, **args)
        except SupervisorNotRunningError:
            # It went away since we last spoke (stopped, crashed): start it again once.
            self._client = None
            return self._control().call(op, timeout=timeout, **args)

    def _status(self, *, gated: bool = False) -> dict[str, Any] | None:
        """The supervisor's status, re-adopting it if it is gone; None when nothing was deployed yet.

        With `gated`, each release lists the gated files its snapshot covers (thousands, with many migrations).
        """
        try:
            result: dict[str, Any] = ControlClient(self.paths).call("status", gated=gated)
            return result
        except SupervisorNotRunningError:
            pass
        try:
            if load_state(self.paths) is None:
                return None
            # Started again as configured now (address, drain, data plane), as a deploy would.
            result = self._control().call("status", gated=gated)
            return result
        except SupervisorNotRunningError:
            return None
        except ValueError as exc:
            raise DeployError(str(exc), platform="local", operation="status") from exc
        except DeployError as exc:
            # Reading must not fail a plan: say why the supervisor is down and read the state file.
            log.warning("the local supervisor in %s could not be started again: %s", self.paths.root, exc)
            return None

    # --- Platform ---------------------------------------------------------------------------------

    def live(self) -> Release | None:
        """The release that last took all traffic (during a canary, the stable one), or None. Read-only."""
        live_version, releases = self._snapshot()
        return next((r for r in releases if r.version == live_version), None)

    def live_url(self) -> str:
        return "http://" + self._config.listen

    def releases(self) -> list[Release]:
        """Releases kept by the supervisor, newest first, the live one included. Read-only."""
        return self._snapshot()[1]

    def _snapshot(self) -> tuple[str | None, list[Release]]:
        status = self._status()
        if status is not None:
            items = [(r["version"], r["port"], r["pid"], r["image"]) for r in status["releases"]]
            return status["live"], [_release(*item) for item in items]
        try:
            saved = load_state(self.paths)
        except ValueError as exc:
            raise DeployError(str(exc), platform="local", operation="status") from exc
        if saved is None:
            return None, []
        records = sorted(saved.releases.values(), key=lambda r: r.seq, reverse=True)
        return saved.live, [_release(r.version, r.port, r.pid, r.image) for r in records]

    def start(self, version: str, image: str | None) -> Release:
        """Start `version` as `local.replicas` processes without traffic; return once every one accepts TCP.

        Idempotent per version: a release that still runs (any replica) is returned as it is, with the
        replica count it was started with. `Release.url` is replica 0's own address: a check through
        it reaches that replica only (the others run the same command and were seen listening).
        Raises DeployError (with the last lines of the failing replica's log) if a replica exits or
        does not listen within `startup_timeout_seconds`; the other replicas are stopped then.
        """
        return self._start(version, image, restore=False)

    def pin_artifacts(self, version: str, digests: ArtifactDigests) -> None:
        """The gate approved `digests` for `version`: the copies its snapshot covers must be exactly these."""
        self._approved[self._check(version, "start")] = digests

    def _start(self, version: str, image: str | None, *, restore: bool) -> Release:
        self._check(version, "start")
        files = self._files(version, restore=restore)
        result = self._call(
            "start",
            timeout=self._config.startup_timeout_seconds + _CONTROL_MARGIN_SECONDS,
            version=version,
            argv=list(self._config.command),
            cwd=str(self._run_dir(files.directory) if files.directory else self._workspace),
            release_dir=str(files.directory or ""),
            tree_digest=files.digest,
            gated=[list(triple) for triple in files.gated],
            env=[list(pair) for pair in self._config.env],
            startup_timeout=self._config.startup_timeout_seconds,
            image=image,
            replicas=self._config.replicas,
            drain_seconds=self._config.drain_seconds,
        )
        if "replicas" not in result and self._config.replicas > 1:
            log.warning(
                "the local supervisor in %s predates local.replicas and runs %s as one process; run "
                "`deploy-orchestrator local stop` (it stops the local releases too), then deploy again: "
                "the deploy starts a current supervisor",
                self.paths.root,
                version,
            )
        return _release(result["version"], result["port"], result["pid"], result["image"])

    # --- TrafficRouter ---------------------------------------------------------------------------

    def traffic_shape(self) -> TrafficShape:
        """The proxy picks a release per request, so weights hold to the percent; a rolling rollout
        moves one of `local.replicas`' share at a time."""
        return TrafficShape(replicas=self._config.replicas, exact=True)

    def start_sized(self, version: str, image: str | None, weight: int) -> Release:
        """`start`: a local release always runs `local.replicas` processes, whatever its first share."""
        return self.start(version, image)

    def route(self, weights: Mapping[str, int]) -> None:
        """Route new requests by weight; returns once the switch is in effect. Raises DeployError."""
        self._call("route", weights=dict(weights))

    def route_sticky(self, weights: Mapping[str, int], sticky: Stickiness) -> None:
        """`route`, with each client pinned to the release it first got (`local.sticky`). Raises DeployError."""
        self._call("route", weights=dict(weights), sticky={"cookie": sticky.cookie, "header": sticky.header})

    def traffic(self) -> TrafficSample:
        """The data plane's per-release counters (`canary.traffic`). Read-only. Raises DeployError."""
        try:
            return TrafficSample.from_dict(self._call("traffic"))
        except (KeyError, TypeError, ValueError) as exc:
            raise DeployError(
                f"the data plane's counters are unreadable: {exc}", platform="local", operation="traffic"
            ) from exc

    def rollback(self, to: Release) -> None:
        """All traffic to `to`, from its own snapshot. Raises DeployError.

        A kept release is started again if a replica is down (its snapshot checked first); a retired
        one comes back only if `local.source` holds exactly the files it had (same tree digest).
        """
        self._start(to.version, to.image, restore=True)
        self.route({to.version: 100})

    # --- release files ---------------------------------------------------------------------------

    def _files(self, version: str, *, restore: bool) -> _Files:
        """The snapshot `version` runs from: the kept one, or captured now (a deploy, or a retired
        release whose files `local.source` holds again). Raises DeployError."""
        status = self._status() or {}
        approved = self._approved.get(version)
        kept = next((r for r in status.get("releases", []) if r["version"] == version), None)
        if kept is not None or restore:
            # Only a release started or restored again reads what its snapshot was held to: thousands of
            # files for every release would make each new deploy's status megabytes.
            status = self._status(gated=True) or {}
            kept = next((r for r in status.get("releases", []) if r["version"] == version), None)
        try:
            if kept is not None and kept.get("tree_digest"):
                directory = Path(kept["release_dir"])
                gated = _listed(kept.get("gated", ()))
                if approved is not None:
                    gated = _triples(self._gated(approved, directory, version))
                return _Files(directory, str(kept["tree_digest"]), gated)
            if restore and kept is not None:
                # Recorded before snapshots: it may go on running, but it is never started from the workspace.
                return _Files(None, "", ())
            remembered = next((r for r in status.get("retired", []) if r["version"] == version), None)
            if restore and remembered is None:
                raise SnapshotError(
                    f"release {version} is not kept here and nothing records its files; roll back to a kept "
                    "release, or deploy it again"
                )
            directory = self.paths.releases / version
            captured = capture(self._source, directory, leave_out=self._leave_out, version=version)
            digest = captured.digest
            if restore and remembered is not None and digest != remembered["tree_digest"]:
                remove(directory)
                raise SnapshotError(
                    f"release {version} was retired and its snapshot removed, and local.source ({self._source}) "
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
            return _Files(directory, digest, gated)
        except SnapshotError as exc:
            raise DeployError(str(exc), platform="local", operation="rollback" if restore else "start") from exc

    def _gated(
        self, approved: ArtifactDigests, directory: Path, version: str, captured: Mapping[str, str] | None = None
    ) -> dict[str, dict[str, str]]:
        return check_gated(
            approved,
            workspace=self._workspace,
            source=self._source,
            snapshot=directory,
            version=version,
            captured=captured,
        )

    def _run_dir(self, release_dir: Path) -> Path:
        """`local.cwd`, moved from `local.source` into the snapshot (default: the snapshot itself)."""
        if self._cwd is None:
            return release_dir
        try:
            return release_dir / self._cwd.relative_to(self._source)
        except ValueError:
            raise DeployError(
                f"local.cwd {self._cwd} is outside local.source {self._source}: releases run from their "
                "captured files, so put cwd inside source",
                platform="local",
                operation="start",
            ) from None

    # --- Retirement ------------------------------------------------------------------------------

    def retire(self, keep: int) -> list[str]:
        """Stop releases without traffic beyond the newest `keep`, after their in-flight requests end."""
        stopped: list[str] = self._call(
            "retire",
            timeout=self._config.drain_seconds + _CONTROL_MARGIN_SECONDS,
            keep=keep,
            drain_seconds=self._config.drain_seconds,
        )
        return stopped

    def stop(self, version: str) -> None:
        """Stop one release without traffic. Idempotent. Raises DeployError if it still has traffic."""
        self._check(version, "stop")
        if self._status() is None and not self.releases():
            return
        self._call(
            "stop",
            timeout=self._config.drain_seconds + _CONTROL_MARGIN_SECONDS,
            version=version,
            drain_seconds=self._config.drain_seconds,
        )

    # --- Previews --------------------------------------------------------------------------------

    def remove(self) -> bool:
        """Stop this preview's releases and proxy and forget it; False when nothing ran. Idempotent."""
        if not self._target.is_preview:
            raise DeployError("only a preview target can be removed", platform="local", operation="remove")
        ran = self._status() is not None or self.paths.state.exists()
        stop_supervisor(self.paths.root)
        shutil.rmtree(self.paths.root, ignore_errors=True)
        return ran

    # --- beyond the protocols ---------------------------------------------------------------------

    def release_log_tail(self, version: str, lines: int = 20) -> str:
        """The last `lines` lines of the release's stdout/stderr log ('' if it has none).

        With several replica logs, the last `lines` lines of each, every one under a `==> name <==` line.
        """
        logs = self.paths.replica_logs(self._check(version, "logs"))
        if len(logs) <= 1:
            return log_tail(self.paths.release_log(version), lines)
        return "\n".join(f"==> {path.name} <==\n{log_tail(path, lines)}" for path in logs)

    @staticmethod
    def _check(version: str, operation: str) -> str:
        try:
            return check_version(version)
        except ValueError as exc:
            raise DeployError(str(exc), platform="local", operation=operation) from exc


@dataclass(frozen=True, slots=True)
class _Files:
    directory: Path | None
    """None for a kept release recorded before snapshots."""
    digest: str
    gated: tuple[tuple[str, str, str], ...]


def _listed(triples: Any) -> tuple[tuple[str, str, str], ...]:
    return tuple((str(a), str(b), str(c)) for a, b, c in triples)


def _triples(covered: Mapping[str, Mapping[str, str]]) -> tuple[tuple[str, str, str], ...]:
    return tuple((section, key, digest) for section, pairs in covered.items() for key, digest in sorted(pairs.items()))


def _release(version: str, port: int, pid: int, image: str | None) -> Release:
    return Release(version=version, url=f"http://127.0.0.1:{port}", image=image, ref=f"pid:{pid}")


def _resolve(workspace: Path, path: Path) -> Path:
    return (Path(workspace) / path).resolve()


def supervisor_status(config: LocalConfig, workspace: Path) -> dict[str, Any]:
    """For the `local status` verb: what the supervisor runs and routes, JSON-ready.

    A supervisor that is gone while its state remains is started again first (it adopts the proxy
    and the replicas); `proxy` says whether the public address is served and with which table.
    `running` is False only when nothing was deployed (or it was stopped), or when the supervisor
    could not be started again (the warning says why); `releases` then lists what the state file
    remembers. Raises DeployError if the state file is unreadable.
    """
    state_dir = state_dir_of(config, workspace)
    platform = LocalPlatform(config, workspace)
    status = platform._status(gated=True)
    if status is not None:
        shown = SupervisorStatus.from_dict(status)
        return {"running": True, "state_dir": str(state_dir), **dataclasses.asdict(shown)}
    live, releases = platform._snapshot()
    return {
        "running": False,
        "state_dir": str(state_dir),
        "listen": config.listen,
        "live": live,
        "releases": [dataclasses.asdict(r) for r in releases],
    }


def supervisor_stop(config: LocalConfig, workspace: Path) -> list[str]:
    """For the `local stop` verb: stop every release and the proxy; return the stopped versions.

    Idempotent ([] when nothing runs). Raises DeployError if the supervisor does not exit in time.
    """
    return stop_supervisor(state_dir_of(config, workspace))
