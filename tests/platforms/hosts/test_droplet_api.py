"""The DigitalOcean calls of the Droplet hosts against the simulator, with the real pydo: membership calls
retried, a reserved IP's assign never sent twice after an ambiguous failure, and the simulator's own state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydo
import pytest
from azure.core.exceptions import HttpResponseError

from orchestrator.errors import DeployError
from orchestrator.platforms.hosts.droplet_api import DropletApi, droplet_api
from tests.peers.do_simulator import DoSimulator, Fault
from tests.platforms.hosts.droplet_site import TOKEN_VAR, droplets_env

IP = "198.51.100.7"


@pytest.fixture
def sim() -> Iterator[DoSimulator]:
    simulator = DoSimulator()
    yield simulator
    simulator.close()
    assert simulator.violations == [], "\n".join(simulator.violations)


@pytest.fixture
def api(sim: DoSimulator, tmp_path: Path) -> DropletApi:
    return droplet_api(TOKEN_VAR, droplets_env(sim, tmp_path))


def _client(sim: DoSimulator) -> pydo.Client:
    return pydo.Client(sim.token, endpoint=sim.url, connection_verify=sim.ca_bundle, retry_total=0)


def test_an_assign_whose_answer_was_lost_is_not_sent_again(sim: DoSimulator, api: DropletApi) -> None:
    blue = sim.infra.seed_droplet("blue", tags=("shop-blue",), public_ip="203.0.113.1")
    green = sim.infra.seed_droplet("green", tags=("shop-green",), public_ip="203.0.113.2")
    sim.infra.seed_reserved_ip(IP, target_port=8080, droplet_id=blue)
    # DigitalOcean takes the action, then the answer is a 500: the IP is read before anything is re-sent.
    sim.add_fault(Fault("POST", rf"/v2/reserved_ips/{IP}/actions", status=500, after=True))

    api.assign(IP, green, timeout=10)

    assert sim.infra.assigned(IP) == green
    assert sim.count("POST", rf"/v2/reserved_ips/{IP}/actions") == 1, "one action, never a second"


def test_an_assign_that_never_arrived_is_sent_again(sim: DoSimulator, api: DropletApi) -> None:
    green = sim.infra.seed_droplet("green", tags=("shop-green",), public_ip="203.0.113.2")
    sim.infra.seed_reserved_ip(IP, target_port=8080)
    sim.add_fault(Fault("POST", rf"/v2/reserved_ips/{IP}/actions", status=503))

    api.assign(IP, green, timeout=10)

    assert sim.infra.assigned(IP) == green
    assert sim.count("POST", rf"/v2/reserved_ips/{IP}/actions") == 2


def test_an_assign_still_in_progress_past_the_deadline_fails_naming_the_setting(
    sim: DoSimulator, api: DropletApi
) -> None:
    green = sim.infra.seed_droplet("green", tags=("shop-green",), public_ip="203.0.113.2")
    sim.infra.seed_reserved_ip(IP, target_port=8080)
    sim.infra.action_seconds = 30.0
    with pytest.raises(DeployError, match=r"still in progress after 0.3 s \(hosts.droplets.switch_timeout_seconds\)"):
        api.assign(IP, green, timeout=0.3)


def test_membership_calls_are_retried_and_a_missing_load_balancer_is_named(sim: DoSimulator, api: DropletApi) -> None:
    web = sim.infra.seed_droplet("web", tags=("shop",), public_ip="203.0.113.1")
    lb = sim.infra.seed_load_balancer("lb", target_port=8080)
    sim.add_fault(Fault("POST", rf"/v2/load_balancers/{lb}/droplets", status=500, times=2))
    api.add(lb, (web,))
    assert api.members(lb) == frozenset({web})
    assert sim.count("POST", rf"/v2/load_balancers/{lb}/droplets") == 3
    with pytest.raises(DeployError, match="read load balancer 4de7ac8b-495b-4884-9a69-1050c6793cd6: not found"):
        api.members("4de7ac8b-495b-4884-9a69-1050c6793cd6")


def test_the_simulator_keeps_tags_membership_and_actions_as_digitalocean_does(sim: DoSimulator) -> None:
    client = _client(sim)
    web = sim.infra.seed_droplet("web", tags=("shop-blue",), public_ip="203.0.113.1", private_ip="10.110.0.1")
    lb = sim.infra.seed_load_balancer("lb", target_port=8080)

    client.tags.assign_resources("shop-green", {"resources": [{"resource_id": str(web), "resource_type": "droplet"}]})
    client.tags.unassign_resources("shop-blue", {"resources": [{"resource_id": str(web), "resource_type": "droplet"}]})
    assert [d["id"] for d in client.droplets.list(tag_name="shop-green")["droplets"]] == [web]
    assert client.droplets.list(tag_name="shop-blue")["droplets"] == []

    with pytest.raises(HttpResponseError) as missing:
        client.load_balancers.add_droplets(lb, {"droplet_ids": [99]})
    assert missing.value.status_code == 422, "an unknown Droplet is refused"
    client.load_balancers.add_droplets(lb, {"droplet_ids": [web]})
    assert client.load_balancers.get(lb)["load_balancer"]["droplet_ids"] == [web]

    sim.infra.seed_reserved_ip(IP, target_port=8080)
    sim.infra.action_seconds = 30.0
    action = client.reserved_ips_actions.post(IP, {"type": "assign", "droplet_id": web})["action"]
    assert (action["status"], action["type"]) == ("in-progress", "assign_ip")
    assert client.reserved_ips.get(IP)["reserved_ip"]["droplet"] is None, "it moves when the action completes"
    with pytest.raises(HttpResponseError) as again:
        client.reserved_ips_actions.post(IP, {"type": "unassign"})
    assert again.value.status_code == 422, "one action at a time"
