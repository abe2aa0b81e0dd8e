"""Every host at once: sign in to all, then prepare all, then reconcile them to the last switch.

`Fleet.ready` is the first thing any platform call does: it opens every host's SSH connection and
checks every host key before it sends anything to any host (one refused key, and no host was
touched), then finds Python, installs the orchestrator and starts the agent on each, in parallel.

Reconciling: every switch of the whole host set writes a fleet record (generation, release) on
each host it reached. A host that was lost during a roll missed the later records, so the record
with the highest generation is what the host set last agreed on; a host found routing anything
else is switched back to it from its own kept snapshot, and the log says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from orchestrator.errors import DeployError, OrchestratorError
from orchestrator.platforms.hosts.bundle import bundle
from orchestrator.platforms.hosts.connection import HostConnection, encode
from orchestrator.platforms.hosts.trust import HostKeyRefused
from orchestrator.recovery import crash_points

__all__ = ["Fleet", "HostStatus", "Outcome"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_FIRE = encode("fire")
_FIRE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class HostStatus:
    live: str | None
    releases: tuple[dict[str, Any], ...]
    """`{version, image, tree_digest}`, newest first."""
    generation: int
    recorded: str | None
    """The release of the last whole-set switch this host took part in."""

    def keeps(self, version: str) -> bool:
        return any(r["version"] == version for r in self.releases)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One operation on several hosts: answers by host, failures by host."""

    answers: dict[str, Any]
    failures: dict[str, OrchestratorError]

    def raise_first(self, what: str) -> None:
        if self.failures:
            told = "; ".join(str(exc) for exc in self.failures.values())
            raise DeployError(f"{what} failed on {', '.join(self.failures)}: {told}", platform="hosts", operation=what)


class Fleet:
    def __init__(
        self,
        connections: Sequence[HostConnection],
        local: dict[str, Any],
        health: dict[str, Any],
        *,
        systemd: bool = True,
        container_engine: str | None = None,
    ) -> None:
        self.connections = list(connections)
        self._local = local
        self._health = health
        self._host_settings = {"systemd": systemd, "container_engine": container_engine}
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(connections)), thread_name_prefix="hosts")
        self.generation = 0
        self.statuses: dict[str, HostStatus] = {}
        self._prepared: set[str] = set()
        self._reconciled = False

    def ready(self, *, reconcile: bool = True, tolerate_lost: bool = False) -> None:
        """Every host connected, checked and prepared; then reconciled unless told not to (reading).
        Idempotent. Raises HostKeyRefused (nothing sent to any host) or DeployError naming the hosts
        that cannot be reached or prepared; with `tolerate_lost` (a rollback: as many hosts back as can
        be) those hosts are left out as lost instead."""
        # Only hosts not yet signed in to in this run: one lost on the way stays lost until the next run.
        closed = [c for c in self.connections if c.name not in self._prepared]
        if closed:
            self._sign_in(closed, tolerate_lost)
        if reconcile and not self._reconciled:
            self._reconciled = True
            self._reconcile()

    def _sign_in(self, closed: list[HostConnection], tolerate_lost: bool) -> None:
        opened = self.each(lambda c: c.open(), closed)
        refused = [exc for exc in opened.failures.values() if isinstance(exc, HostKeyRefused)]
        if refused or (opened.failures and not tolerate_lost):
            for connection in closed:
                connection.close()
            if refused:
                raise refused[0]
            opened.raise_first("connect")
        reached = [c for c in closed if c.name not in opened.failures]
        made = bundle()
        prepared = self.each(lambda c: c.prepare(made, self._local, self._health, self._host_settings), reached)
        if not tolerate_lost:
            prepared.raise_first("prepare")
        for connection in reached:
            if connection.name in prepared.answers:
                kept_by = connection.keeper.get("kind", "none")
                level = logging.INFO if kept_by != "none" else logging.WARNING
                log.log(level, "host %s: %s", connection.name, connection.keeper.get("detail", ""))
        for name, exc in {**opened.failures, **prepared.failures}.items():
            log.warning("host %s left out: %s", name, exc)
        self._prepared.update(c.name for c in closed)
        self.refresh(strict=not tolerate_lost)

    def refresh(self, *, strict: bool = True) -> dict[str, HostStatus]:
        """Read every host's status again; not `strict`: the reachable ones, keeping what was known of the others."""
        among = self.connections if strict else [c for c in self.connections if c.is_open]
        outcome = self.each(lambda c: _status(c.call("status")), among)
        if strict:
            outcome.raise_first("status")
        self.statuses.update(outcome.answers)
        self.generation = max([self.generation, *(s.generation for s in self.statuses.values())])
        return self.statuses

    def agreed(self) -> HostStatus | None:
        """The status whose record is newest: what the host set last switched to."""
        recorded = [s for s in self.statuses.values() if s.recorded is not None]
        return max(recorded, key=lambda s: s.generation) if recorded else None

    def _reconcile(self) -> None:
        agreed = self.agreed()
        if agreed is None or agreed.recorded is None:
            return
        version = agreed.recorded
        image = next((r["image"] for r in agreed.releases if r["version"] == version), None)
        for connection in self.connections:
            status = self.statuses.get(connection.name)
            if status is None or not connection.is_open or status.live == version:
                continue
            if not status.keeps(version):
                log.warning(
                    "host %s routes %s, but the hosts last switched to %s, which it does not keep: the next deploy "
                    "brings it in line",
                    connection.name,
                    status.live,
                    version,
                )
                continue
            connection.call("rollback", version=version, image=image, commit=agreed.generation, timeout=60)
            log.warning("host %s reconciled: it routed %s, now %s as the others", connection.name, status.live, version)
        self.refresh()

    def each(self, work: Callable[[HostConnection], T], among: Sequence[HostConnection] | None = None) -> Outcome:
        """`work` on every host (or `among`) in parallel; never raises for one host's failure."""
        chosen = list(self.connections if among is None else among)
        futures = {c.name: self._pool.submit(work, c) for c in chosen}
        answers: dict[str, Any] = {}
        failures: dict[str, OrchestratorError] = {}
        for name, future in futures.items():
            try:
                answers[name] = future.result()
            except OrchestratorError as exc:
                failures[name] = exc
        return Outcome(answers, failures)

    def switch(
        self,
        arm: Callable[[HostConnection], tuple[str, dict[str, Any]]],
        among: Sequence[HostConnection],
        *,
        otherwise: Callable[[HostConnection], Any] | None = None,
        all_or_nothing: bool = True,
    ) -> Outcome:
        """A switch on every host of `among` as close to simultaneous as SSH allows. Never raises for
        one host's failure.

        First every host stages it (`arm` gives the operation and its arguments), in parallel; if any
        host fails that, the others are disarmed and nothing has switched anywhere. Then every armed
        host is sent the same pre-encoded `fire` back to back from this thread (under the GIL, threads
        would only take turns at these writes, with hand-offs between them), and the answers, each
        with the moment that host's switch took effect, are gathered afterwards. A host that answered
        it could not stage (`{"armed": false}`) gets `otherwise` after the others fired.

        Without `all_or_nothing` (a rollback: as many hosts back as can be) a host that fails to stage
        is left out as a failure and the armed hosts fire all the same.
        """
        staged = self.each(lambda c: _stage(c, *arm(c)), among)
        armed = [c for c in among if c.name in staged.answers and staged.answers[c.name].get("armed")]
        if staged.failures and all_or_nothing:
            self.each(lambda c: c.call("disarm"), armed)
            return Outcome({}, staged.failures)
        pending: dict[str, Callable[[], Any]] = {}
        failures: dict[str, OrchestratorError] = dict(staged.failures)
        for connection in armed:
            try:
                pending[connection.name] = connection.send_encoded(_FIRE, "fire", _FIRE_SECONDS)
            except OrchestratorError as exc:
                failures[connection.name] = exc
            crash_points.reach("between-host-fires")  # the crash matrix: one host switched, the rest armed
        futures = {name: self._pool.submit(answer) for name, answer in pending.items()}
        answers: dict[str, Any] = {}
        for name, future in futures.items():
            try:
                answers[name] = future.result()
            except OrchestratorError as exc:
                failures[name] = exc
        unarmed = [c for c in among if c.name in staged.answers and c not in armed]
        if unarmed and otherwise is not None:
            after = self.each(otherwise, unarmed)
            answers.update(after.answers)
            failures.update(after.failures)
        return Outcome(answers, failures)

    def close(self) -> None:
        for connection in self.connections:
            connection.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _stage(connection: HostConnection, op: str, args: dict[str, Any]) -> Any:
    return connection.call(op, **args)


def _status(doc: dict[str, Any]) -> HostStatus:
    record = doc.get("record") or {}
    return HostStatus(
        live=doc["live"],
        releases=tuple(doc["releases"]),
        generation=int(record.get("generation", 0)),
        recorded=record.get("live"),
    )
