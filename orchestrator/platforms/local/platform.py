"""`LocalPlatform`: the adapter that drives the local supervisor (a `TrafficRouter` with `Retirement`,
`Previews`, `PinsArtifacts`, a `TrafficMeter` and a `StickyRouter`). Which files each release runs
from is decided in `release_snapshots`.

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
from pathlib import Path
from typing import Any

from orchestrator.artifacts import ArtifactDigests
from orchestrator.contract import LocalConfig
from orchestrator.contract.canary import Stickiness
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
from orchestrator.platforms.local.release_snapshots import ReleaseSnapshots
from orchestrator.platforms.local.state import StatePaths, check_version, load_state
from orchestrator.platforms.local.targets import state_dir_of
from orchestrator.platforms.registry import PRODUCTION, Target
from orchestrator.platforms.traffic import TrafficSample

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
        self._snapshots = ReleaseSnapshots(
            self.paths,
            self._workspace,
            source=self._resolve(config.source) if config.source is not None else self._workspace.resolve(),
            cwd=self._resolve(config.cwd) if config.cwd is not None else None,
            leave_out=(self.paths.root, *leave_out),
        )
        self._client: ControlClient | None = None
        self._approved: dict[str, ArtifactDigests] = {}

    def _resolve(self, path: Path) -> Path:
        return (self._workspace / path).resolve()

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
        status = self._status_for(version, restore=restore)
        files = self._snapshots.files(version, status, self._approved.get(version), restore=restore)
        result = self._call(
            "start",
            timeout=self._config.startup_timeout_seconds + _CONTROL_MARGIN_SECONDS,
            version=version,
            argv=list(self._config.command),
            cwd=str(self._snapshots.run_dir(files.directory) if files.directory else self._workspace),
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

    def _status_for(self, version: str, *, restore: bool) -> dict[str, Any]:
        """The supervisor's status, as `release_snapshots` needs it to find `version`'s files."""
        status = self._status() or {}
        if restore or any(r["version"] == version for r in status.get("releases", [])):
            # Only a release started or restored again reads what its snapshot was held to: thousands of
            # files for every release would make each new deploy's status megabytes.
            status = self._status(gated=True) or {}
        return status

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
        """The data plane's per-release counters (`platforms.traffic`). Read-only. Raises DeployError."""
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


def _release(version: str, port: int, pid: int, image: str | None) -> Release:
    return Release(version=version, url=f"http://127.0.0.1:{port}", image=image, ref=f"pid:{pid}")


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
