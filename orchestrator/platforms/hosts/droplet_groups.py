"""`DropletGroups`: blue/green between two Droplet groups, switched at a load balancer or a reserved IP.

Each group is a `HostsPlatform` of its own (the supervisor and proxy on every Droplet). The group
behind the load balancer serves; a release starts on the other, idle group and is checked there
(through an SSH tunnel to its first Droplet). The switch then routes the idle group's proxies to
it (no user reaches them yet) and moves the load balancer's Droplets (or the reserved IP) to that
group: `load_balancer.plan_switch` says which calls it makes, the plan is logged, then done. The
group switched away from keeps its release running, so a rollback moves the load balancer back.

Every switch leaves its record on the hosts (`switch_record`): which group serves when no switch
is under way. A switch to a new release is recorded once done; a switch back (rollback, undo) is
recorded before its first call. A switch that fails is undone, and if the undo fails too, or the
run dies half-way, the next run's first call puts the recorded group back behind the load
balancer before anything else.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from orchestrator.artifacts import ArtifactDigests
from orchestrator.contract import DeployConfig
from orchestrator.errors import DeployError, OrchestratorError
from orchestrator.platforms.base import Release, TrafficShape
from orchestrator.platforms.hosts import load_balancer
from orchestrator.platforms.hosts.discovery import DropletHosts, discover
from orchestrator.platforms.hosts.droplet_api import DropletApi, droplet_api
from orchestrator.platforms.hosts.droplets import GROUPS, DropletsConfig
from orchestrator.platforms.hosts.fleet import Fleet
from orchestrator.platforms.hosts.load_balancer import SwitchPlan, group_of, plan_switch
from orchestrator.platforms.hosts.platform import HostsPlatform
from orchestrator.platforms.hosts.settings import HostsConfig
from orchestrator.platforms.hosts.switch_record import SwitchRecord, read_record, write_record

__all__ = ["DropletGroups", "SwitchUndone", "create_on_droplets"]

log = logging.getLogger(__name__)


class SwitchUndone(DeployError):
    """The switch failed and was undone: the group that served before serves again, alone."""


class DropletGroups:
    name = "hosts"

    def __init__(
        self,
        config: HostsConfig,
        droplets: DropletsConfig,
        api: DropletApi,
        groups: Mapping[str, HostsPlatform],
        ids: Mapping[str, tuple[int, ...]],
    ) -> None:
        self._config = config
        self._droplets = droplets
        self._api = api
        self.groups = dict(groups)
        self._ids = dict(ids)
        self._live: str | None = None
        self._generation = 0
        self._ready = False
        self._settle: float | None = None
        self._started: dict[str, str] = {}
        """Version -> the group it was started on in this run."""
        self.plans: list[SwitchPlan] = []
        """Every switch this run planned, in order (what it did, as data)."""

    # --- the switch -------------------------------------------------------------------------------

    def _members(self) -> frozenset[int]:
        return load_balancer.members_now(self._api, self._droplets.via, self._droplets.switch_target)

    def plan(self, to: str) -> SwitchPlan:
        """What putting group `to` behind the load balancer (or reserved IP) takes, from its state now."""
        d = self._droplets
        return plan_switch(d.via, d.switch_target, self._members(), self._ids, to, self._settle_seconds())

    def _settle_seconds(self) -> float:
        if self._droplets.via != "load_balancer":
            return 0.0
        if self._settle is None:
            configured = self._droplets.settle_seconds
            self._settle = (
                configured if configured is not None else self._api.health_settle(self._droplets.switch_target)
            )
        return self._settle

    def _switch(self, to: str, version: str | None, *, forward: bool = False) -> None:
        """Group `to` alone behind the switch. Raises DeployError after undoing what it did.

        The record says which group serves when no switch is under way. A switch back to a release
        that served before (a rollback, finishing a recorded switch) is recorded first, so a run that
        dies on the way is finished by the next one; a `forward` switch (to a release not yet verified
        through the public route) is recorded once done, so one that dies half-way is undone."""
        plan = self.plan(to)
        self.plans.append(plan)
        log.info("switch plan: %s", plan.describe())
        if plan.empty:
            self._live = to
            return
        before, before_version = self._live, self._version_on(self._live)
        if not forward:
            self._record(to, version)
        try:
            load_balancer.apply(self._api, plan, self._droplets.switch_timeout_seconds)
            if forward:
                self._record(to, version)
        except OrchestratorError as exc:
            if not forward:
                # Never undone: that would put users back on what this switch moves them away from.
                raise DeployError(
                    f"switching back to the {to} Droplets failed ({exc}): {plan.subject} may still hold the "
                    f"others; the switch record names {to}, and the next run finishes the switch before anything "
                    "else",
                    platform="hosts",
                    operation="switch",
                ) from exc
            self._undo(plan, before, before_version, exc)
        self._live = to

    def _undo(self, plan: SwitchPlan, before: str | None, version: str | None, cause: OrchestratorError) -> None:
        if before is None:
            raise DeployError(
                f"switching to the {plan.to_group} Droplets failed ({cause}); nothing served before it",
                platform="hosts",
                operation="switch",
            ) from cause
        try:
            self._record(before, version)
            back = self.plan(before)
            self.plans.append(back)
            log.warning("switch failed (%s); undoing: %s", cause, back.describe())
            load_balancer.apply(self._api, back, self._droplets.switch_timeout_seconds)
        except OrchestratorError as undo:
            raise DeployError(
                f"switching to the {plan.to_group} Droplets failed ({cause}), and putting the {before} Droplets "
                f"back failed too ({undo}): {plan.subject} may hold both groups; the switch record "
                f"names {before}, and the next run puts it back before anything else",
                platform="hosts",
                operation="switch",
            ) from cause
        raise SwitchUndone(
            f"switching to the {plan.to_group} Droplets failed ({cause}); the {before} Droplets serve again, alone",
            platform="hosts",
            operation="switch",
        ) from cause

    def _record(self, group: str, version: str | None) -> None:
        self._generation += 1
        write_record(self._fleet_list(), SwitchRecord(self._generation, group, version))

    def _fleet_list(self) -> list[Fleet]:
        return [g.fleet for g in self.groups.values()]

    def _version_on(self, group: str | None) -> str | None:
        if group is None:
            return None
        live = self.groups[group].live()
        return live.version if live else None

    def _prepare(self, *, tolerate_lost: bool = False) -> None:
        """Every Droplet of both groups signed in to; the switch brought in line with its newest record. Once.
        With `tolerate_lost` (a rollback: back as far as can be) unreachable Droplets are left out."""
        if self._ready:
            return
        # Both groups sign in at once (each signs in to its Droplets in parallel too).
        with ThreadPoolExecutor(max_workers=len(self.groups), thread_name_prefix="droplet-groups") as pool:
            signing_in = [
                pool.submit(group.fleet.ready, reconcile=not tolerate_lost, tolerate_lost=tolerate_lost)
                for group in self.groups.values()
            ]
            for done in signing_in:
                done.result()
        record = read_record(self._fleet_list())
        members = self._members()
        behind = group_of(members, self._ids)
        if record is None:
            if behind == "mixed":
                raise DeployError(
                    f"{self.plan('blue').subject} holds Droplets of both groups and no switch record "
                    "says which serves; remove one group's Droplets from it",
                    platform="hosts",
                    operation="switch",
                )
            self._live = behind
        else:
            self._generation = record.generation
            self._live = behind if behind != "mixed" else None
            if behind != record.group:
                serving = {None: "no Droplets", "mixed": "both groups"}.get(behind, f"the {behind} Droplets")
                log.warning("the last switch was to the %s Droplets, but %s serve: finishing it", record.group, serving)
                self._switch(record.group, record.version)
        self._ready = True

    def _idle(self) -> str:
        return next(g for g in GROUPS if g != self._live) if self._live else GROUPS[0]

    # --- Platform ---------------------------------------------------------------------------------

    def live(self) -> Release | None:
        self._prepare()
        return self.groups[self._live].live() if self._live else None

    def live_url(self) -> str:
        return self._config.public_url

    def releases(self) -> list[Release]:
        """The serving group's releases, then the idle group's (what a rollback can reach)."""
        self._prepare()
        order = [self._live, self._idle()] if self._live else list(GROUPS)
        seen: dict[str, Release] = {}
        for group in order:
            for release in self.groups[group].releases():
                seen.setdefault(release.version, release)
        return list(seen.values())

    def start(self, version: str, image: str | None) -> Release:
        """Start `version` on the idle group (checked on each of its Droplets); the serving group is not touched."""
        self._prepare()
        idle = self._idle()
        release = self.groups[idle].start(version, image)
        self._started[version] = idle
        serving = f"the {self._live} Droplets serve" if self._live else "nothing serves yet"
        log.info("%s started on the %s Droplets (idle); %s", version, idle, serving)
        log.info("the switch to it will: %s", self.plan(idle).describe())
        return release

    def rollback(self, to: Release) -> None:
        """Back to `to`: the load balancer moved to the group serving it, or the serving group's hosts rolled back."""
        self._prepare(tolerate_lost=True)
        order = [self._live, self._idle()] if self._live else list(GROUPS)
        serving = next((g for g in order if g is not None and self._version_on(g) == to.version), None)
        if serving is not None:
            # Its hosts last switched to `to` as a whole: only the load balancer (or reserved IP) moves.
            self._switch(serving, to.version)
            return
        for group in order:
            if any(r.version == to.version for r in self.groups[group].releases()):
                self.groups[group].rollback(to)
                self._switch(group, to.version)
                return
        raise DeployError(
            f"rollback to {to.version}: neither Droplet group keeps it", platform="hosts", operation="rollback"
        )

    # --- TrafficRouter ----------------------------------------------------------------------------

    def traffic_shape(self) -> TrafficShape:
        return TrafficShape(replicas=1, exact=False)

    def start_sized(self, version: str, image: str | None, weight: int) -> Release:
        return self.start(version, image)

    def route(self, weights: Mapping[str, int]) -> None:
        """All traffic to one release: its group's proxies to it, then that group behind the switch."""
        whole = [v for v, w in weights.items() if w == 100]
        if not whole:
            raise DeployError(
                f"two Droplet groups switch as a whole; cannot split {dict(weights)}",
                platform="hosts",
                operation="route",
            )
        version = whole[0]
        self._prepare()
        group = self._started.get(version) or next((g for g in GROUPS if self._version_on(g) == version), None)
        if group is None:
            raise DeployError(f"{version} runs on neither Droplet group", platform="hosts", operation="route")
        previous = self._version_on(group)
        self.groups[group].route({version: 100})
        try:
            self._switch(group, version, forward=True)
        except SwitchUndone:
            # No user reaches this group again: its proxies go back to what they served, so the failed
            # release can be stopped. (Not when the undo failed: then users may reach it.)
            if previous and previous != version:
                self.groups[group].route({previous: 100})
            raise

    # --- Retirement and the rest ------------------------------------------------------------------

    def retire(self, keep: int) -> list[str]:
        self._prepare()
        return sorted({v for g in self.groups.values() for v in g.retire(keep)})

    def stop(self, version: str) -> None:
        """Stop `version` on the groups that keep it without routing it."""
        self._prepare()
        for name, group in self.groups.items():
            if self._version_on(name) != version and any(r.version == version for r in group.releases()):
                group.stop(version)

    def pin_artifacts(self, version: str, digests: ArtifactDigests) -> None:
        for group in self.groups.values():
            group.pin_artifacts(version, digests)

    def close(self) -> None:
        for group in self.groups.values():
            group.close()


def create_on_droplets(
    config: DeployConfig, hosts: HostsConfig, workspace: Path, env: Mapping[str, str]
) -> HostsPlatform | DropletGroups:
    """The platform for `hosts.droplets`: a `HostsPlatform` over the tagged Droplets, or `DropletGroups`."""
    from orchestrator.platforms.hosts.factory import build_platform

    droplets = hosts.droplets
    assert droplets is not None, "only called with hosts.droplets"
    api = droplet_api(config.credentials.do_api_token_env_var, env)
    found = discover(api, droplets)
    if not droplets.switched:
        return build_platform(config, _with_hosts(hosts, found["all"]), workspace, env)
    if droplets.via == "reserved_ip":
        for group, on in found.items():
            if len(on.ids) != 1:
                raise DeployError(
                    f"hosts.droplets.reserved_ip: a reserved IP points at one Droplet, but {len(on.ids)} carry "
                    f"{on.tag!r} ({group}); keep one per group, or switch with a load balancer (load_balancer_id)",
                    platform="hosts",
                    operation="discover",
                )
    groups = {group: build_platform(config, _with_hosts(hosts, on), workspace, env) for group, on in found.items()}
    return DropletGroups(hosts, droplets, api, groups, {group: on.ids for group, on in found.items()})


def _with_hosts(hosts: HostsConfig, found: DropletHosts) -> HostsConfig:
    return replace(hosts, hosts=found.hosts)
