"""Blue/green between two Droplet groups: real SSH hosts are the Droplets (the simulator reports their
addresses), the real pydo moves the simulator's load balancer or reserved IP, and users are served
through it (its forwarder passes requests to the Droplets it holds)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.config import parse_config
from orchestrator.errors import DeployError
from orchestrator.health.release_checks import ReleaseChecks
from orchestrator.platforms import registry
from orchestrator.platforms.base import Release
from orchestrator.platforms.hosts.droplet_groups import DropletGroups
from orchestrator.platforms.registry import PRODUCTION, PlatformContext
from orchestrator.runlog import RunLog
from orchestrator.strategies import RolloutFailure, execute, plan_rollout
from tests.peers.do_simulator import DoSimulator, Fault
from tests.peers.postgres import free_port
from tests.peers.ssh_hosts import Fleet
from tests.platforms.hosts.droplet_site import droplets_env
from tests.platforms.hosts.workspace import hosts_document, hosts_env

# Real SSH hosts: every run signs in to the Droplets of both groups, installs and starts releases.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@dataclass
class Groups:
    sim: DoSimulator
    fleet: Fleet
    workspace: Path
    port: int
    ids: dict[str, list[int]]
    target: str
    """The load balancer's id or the reserved IP."""
    document: dict[str, Any]
    env: dict[str, str]
    made: list[DropletGroups] = field(default_factory=list)

    def platform(self) -> DropletGroups:
        """A new run's platform (nothing carried over from the last one)."""
        config = parse_config(json.loads(json.dumps(self.document)), self.workspace)
        made = registry.descriptor("hosts").create(
            config, PlatformContext(workspace=str(self.workspace), env=self.env), PRODUCTION
        )
        assert isinstance(made, DropletGroups)
        self.made.append(made)
        return made

    def deploy(self, version: str) -> DropletGroups:
        platform = self.platform()
        config = parse_config(json.loads(json.dumps(self.document)), self.workspace)
        live = platform.live()
        plan = plan_rollout(config, platform=platform, old=live.version if live else None, new=version, image=None)
        execute(plan, platform, ReleaseChecks(config, dsn=None), RunLog(), sleep=lambda _s: None)
        return platform

    def served(self, count: int = 6) -> set[str]:
        """The releases users get through the load balancer (or reserved IP)."""
        url = self.sim.infra.entry_url(self.target)
        return {str(requests.get(f"{url}/version", timeout=10).json()["version"]) for _ in range(count)}

    def on_host(self, index: int) -> str:
        host = self.fleet.hosts[index]
        return str(requests.get(f"http://{host.address}:{self.port}/version", timeout=10).json()["version"])

    def behind(self) -> list[str]:
        """Which groups' Droplets the load balancer holds (or the reserved IP points at)."""
        if self.target in self.sim.infra.load_balancers:
            members = set(self.sim.infra.members(self.target))
        else:
            members = {self.sim.infra.assigned(self.target)} - {None}
        return [group for group, ids in self.ids.items() if members & set(ids)]


def _groups(sim: DoSimulator, fleet: Fleet, workspace: Path, sizes: tuple[int, int], via: str) -> Groups:
    port = free_port()
    ids: dict[str, list[int]] = {"blue": [], "green": []}
    hosts = iter(fleet.hosts)
    for group, size in zip(ids, sizes, strict=True):
        for _ in range(size):
            host = next(hosts)
            ids[group].append(sim.infra.seed_droplet(host.name, tags=(f"shop-{group}",), public_ip=host.address))
    if via == "load_balancer":
        # Its health check passes a Droplet added one second later (DigitalOcean's defaults: 30 s).
        target = sim.infra.seed_load_balancer(
            "shop-lb", target_port=port, check_interval_seconds=1, healthy_threshold=1
        )
        switch = {"load_balancer_id": target}
    else:
        target = sim.infra.seed_reserved_ip("198.51.100.7", target_port=port)
        switch = {"reserved_ip": target}
    document = hosts_document(workspace, fleet, port, sim.infra.entry_url(target))
    document["deployment_config"]["hosts"].pop("hosts")
    document["deployment_config"]["hosts"]["droplets"] = {
        "blue_tag": "shop-blue",
        "green_tag": "shop-green",
        "root": str(fleet.directory / "{name}-root"),
        **switch,
    }
    env = {**hosts_env(fleet, workspace), **droplets_env(sim, workspace, key=fleet.client_key)}
    return Groups(sim, fleet, workspace, port, ids, target, document, env)


@pytest.fixture
def sim() -> Iterator[DoSimulator]:
    simulator = DoSimulator()
    yield simulator
    simulator.close()
    assert simulator.violations == [], "\n".join(simulator.violations)


@pytest.fixture
def lb_groups(sim: DoSimulator, ssh_fleet: Fleet, tmp_path: Path) -> Iterator[Groups]:
    made = _groups(sim, ssh_fleet, tmp_path, (1, 2), "load_balancer")
    yield made
    for platform in made.made:
        platform.close()


def test_a_load_balancer_failing_mid_switch_is_undone_or_left_for_the_next_run_to_finish(lb_groups: Groups) -> None:
    g = lb_groups
    g.deploy("v1")
    remove = rf"/v2/load_balancers/{g.target}/droplets"
    # The add goes through, then every attempt to remove the blue Droplets fails (a first try and its
    # three retries); the undo's remove (of the green ones) then succeeds.
    g.sim.add_fault(Fault("DELETE", remove, status=500, times=4))
    with pytest.raises(RolloutFailure) as failed:
        g.deploy("v2")
    assert "the blue Droplets serve again, alone" in str(failed.value)
    assert g.behind() == ["blue"] and g.served() == {"v1"}

    # Now the undo fails too: the load balancer is left holding both groups, and says so.
    g.sim.add_fault(Fault("DELETE", remove, status=500, times=None))
    with pytest.raises(RolloutFailure) as stuck:
        g.deploy("v2")
    assert "may hold both groups; the switch record names blue, and the next run puts it back" in str(stuck.value)
    assert g.behind() == ["blue", "green"]

    g.sim.faults.clear()
    after = g.platform()
    live = after.live()
    assert live is not None and live.version == "v1"
    assert g.behind() == ["blue"] and g.served() == {"v1"}, "the next run finished the switch back first"
    assert after.plans[-1].describe() == f"load balancer {g.target}: remove Droplets {g.ids['green']} (green)"


def test_a_reserved_ip_is_reassigned_to_the_new_group_and_back(
    sim: DoSimulator, ssh_fleets: Any, tmp_path: Path
) -> None:
    fleet = ssh_fleets(2)
    g = _groups(sim, fleet, tmp_path, (1, 1), "reserved_ip")
    try:
        g.deploy("v1")
        assert g.behind() == ["blue"] and g.served() == {"v1"}
        platform = g.deploy("v2")
        assert g.behind() == ["green"] and g.served() == {"v2"}
        assert platform.plans[-1].describe() == f"assign reserved IP {g.target} to Droplet {g.ids['green'][0]} (green)"
        back = g.platform()
        back.rollback(Release("v1"))
        assert g.behind() == ["blue"] and g.served() == {"v1"}
        with pytest.raises(DeployError, match="rollback to v9: neither Droplet group keeps it"):
            back.rollback(Release("v9"))

        # A rollback whose assign never gets through is not undone (that would be v2 again): the record
        # names blue, and the next run finishes it.
        g.deploy("v2")
        sim.add_fault(Fault("POST", rf"/v2/reserved_ips/{g.target}/actions", status=500, times=None))
        with pytest.raises(DeployError, match=r"switching back to the blue Droplets failed .* the switch record names"):
            g.platform().rollback(Release("v1"))
        assert g.behind() == ["green"]
        sim.faults.clear()
        after = g.platform()
        live = after.live()
        assert live is not None and live.version == "v1" and g.behind() == ["blue"] and g.served() == {"v1"}
    finally:
        for made in g.made:
            made.close()
        fleet.close()
