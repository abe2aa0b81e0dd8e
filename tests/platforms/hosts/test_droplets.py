"""Hosts found on DigitalOcean Droplets: the config block, discovery by tag and the switch plan, against the
simulator with the real pydo (no SSH: nothing here signs in to a host)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import execute
from orchestrator.config import parse_config
from orchestrator.errors import ConfigError, DeployError
from orchestrator.platforms import registry
from orchestrator.platforms.hosts.droplet_api import droplet_api
from orchestrator.platforms.hosts.droplet_groups import DropletGroups
from orchestrator.platforms.hosts.load_balancer import SwitchPlan
from orchestrator.platforms.hosts.platform import HostsPlatform
from orchestrator.platforms.hosts.settings import settings_of
from orchestrator.platforms.registry import PRODUCTION, PlatformContext
from tests.peers.do_simulator import DoSimulator
from tests.platforms.hosts.droplet_site import TOKEN_VAR, droplets_document, droplets_env
from tests.workspace import write_config

LB = "4de7ac8b-495b-4884-9a69-1050c6793cd6"


@pytest.fixture
def sim() -> Iterator[DoSimulator]:
    simulator = DoSimulator()
    yield simulator
    simulator.close()
    assert simulator.violations == [], "\n".join(simulator.violations)


def _create(sim: DoSimulator, workspace: Path, droplets: dict[str, Any], **env: str) -> Any:
    config = parse_config(droplets_document(droplets), workspace)
    context = PlatformContext(workspace=str(workspace), env={**droplets_env(sim, workspace), **env})
    return registry.descriptor("hosts").create(config, context, PRODUCTION)


def _problems(droplets: dict[str, Any], workspace: Path, **deployment: Any) -> tuple[str, ...]:
    document = droplets_document(droplets)
    document["deployment_config"].update(deployment)
    with pytest.raises(ConfigError) as error:
        parse_config(document, workspace)
    return error.value.problems


def test_droplets_found_by_tag_are_the_hosts_at_the_address_the_config_names(sim: DoSimulator, tmp_path: Path) -> None:
    first = sim.infra.seed_droplet("web-1", tags=("shop",), public_ip="203.0.113.10", private_ip="10.110.0.10")
    sim.infra.seed_droplet("db-1", tags=("db",), public_ip="203.0.113.20", private_ip="10.110.0.20")
    sim.infra.seed_droplet("web-2", tags=("shop", "env:prod"), public_ip="203.0.113.11", private_ip="10.110.0.11")

    public = _create(sim, tmp_path, {"tag": "shop", "user": "deploy", "port": 2222})
    private = _create(sim, tmp_path, {"tag": "shop", "address": "private"})

    assert isinstance(public, HostsPlatform) and isinstance(private, HostsPlatform)
    assert [(c.host.address, c.host.port, c.host.user) for c in public.fleet.connections] == [
        ("203.0.113.10", 2222, "deploy"),
        ("203.0.113.11", 2222, "deploy"),
    ]
    assert [c.host.address for c in private.fleet.connections] == ["10.110.0.10", "10.110.0.11"]
    assert dict(public.fleet.connections[0].host.labels) == {"droplet": "web-1"}
    assert sim.count("GET", r"/v2/droplets") == 2, "one page each, filtered by the API (tag_name)"
    assert first in sim.infra.droplets


def test_discovery_reads_every_page(sim: DoSimulator, tmp_path: Path) -> None:
    for i in range(5):
        sim.infra.seed_droplet(f"web-{i}", tags=("shop",), public_ip=f"203.0.113.{i + 1}")
    api = droplet_api(TOKEN_VAR, droplets_env(sim, tmp_path))
    assert [d["name"] for d in api.droplets("shop", per_page=2)] == [f"web-{i}" for i in range(5)]
    assert sim.count("GET", r"/v2/droplets") == 3


def test_a_tag_without_droplets_and_a_droplet_in_both_groups_are_refused_before_any_host_is_touched(
    sim: DoSimulator, tmp_path: Path
) -> None:
    with pytest.raises(DeployError, match="no Droplet carries the tag 'shop'"):
        _create(sim, tmp_path, {"tag": "shop"})
    both = sim.infra.seed_droplet("web-1", tags=("shop-blue", "shop-green"), public_ip="203.0.113.10")
    sim.infra.seed_load_balancer("lb", target_port=8080)
    with pytest.raises(DeployError, match=rf"Droplets \[{both}\] carry both 'shop-blue' and 'shop-green'"):
        _create(sim, tmp_path, {"blue_tag": "shop-blue", "green_tag": "shop-green", "load_balancer_id": LB})


def test_a_reserved_ip_needs_one_droplet_per_group(sim: DoSimulator, tmp_path: Path) -> None:
    for i, tag in enumerate(("shop-blue", "shop-green", "shop-green")):
        sim.infra.seed_droplet(f"web-{i}", tags=(tag,), public_ip=f"203.0.113.{10 + i}")
    with pytest.raises(DeployError, match="a reserved IP points at one Droplet, but 2 carry 'shop-green'"):
        _create(sim, tmp_path, {"blue_tag": "shop-blue", "green_tag": "shop-green", "reserved_ip": "198.51.100.7"})


def test_the_switch_plan_says_which_droplets_move_before_anything_moves(sim: DoSimulator, tmp_path: Path) -> None:
    blue = [sim.infra.seed_droplet(f"blue-{i}", tags=("shop-blue",), public_ip=f"203.0.113.{i}") for i in (1, 2)]
    green = [sim.infra.seed_droplet(f"green-{i}", tags=("shop-green",), public_ip=f"203.0.113.{i}") for i in (3, 4)]
    stranger = sim.infra.seed_droplet("other", tags=("other",), public_ip="203.0.113.9")
    lb = sim.infra.seed_load_balancer("lb", target_port=8080, droplet_ids=(*blue, stranger))

    platform = _create(sim, tmp_path, {"blue_tag": "shop-blue", "green_tag": "shop-green", "load_balancer_id": lb})

    assert isinstance(platform, DropletGroups)
    assert [c.host.address for c in platform.groups["green"].fleet.connections] == ["203.0.113.3", "203.0.113.4"]
    plan = platform.plan("green")
    assert plan == SwitchPlan("load_balancer", lb, "green", "blue", tuple(green), tuple(blue), ("blue",), 30.0)
    assert plan.describe() == (
        f"load balancer {lb}: add Droplets {green} (green), then wait 30 s for its health check to pass them, "
        f"then remove Droplets {blue} (blue)"
    ), "a Droplet of neither group stays; the wait is the load balancer's health check (10 s x 3)"
    assert platform.plan("blue").empty
    assert sim.infra.members(lb) == sorted([*blue, stranger]), "planning moved nothing"
    assert sim.count("POST") == sim.count("DELETE") == 0
    droplets = {"blue_tag": "shop-blue", "green_tag": "shop-green", "load_balancer_id": lb, "settle_seconds": 2}
    assert _create(sim, tmp_path, droplets).plan("green").settle_seconds == 2.0, "the config's wait wins"


def test_droplets_config_parses_and_locks_by_tag(tmp_path: Path) -> None:
    droplets = {"blue_tag": "shop-blue", "green_tag": "shop-green", "reserved_ip": "198.51.100.7", "address": "private"}
    config = parse_config(droplets_document(droplets), tmp_path)
    found = settings_of(config.deployment).droplets
    assert found is not None
    assert (found.via, found.switch_target, found.group_tags(), found.address, found.port) == (
        "reserved_ip",
        "198.51.100.7",
        {"blue": "shop-blue", "green": "shop-green"},
        "private",
        22,
    )
    assert registry.descriptor("hosts").lock_key(config.deployment) == "hosts/droplets:shop-blue,shop-green"


@pytest.mark.parametrize(
    ("droplets", "deployment", "problem"),
    [
        (
            {"tag": "shop", "load_balancer_id": LB},
            {},
            "deployment_config.hosts.droplets.load_balancer_id: not used with droplets.tag (one set of hosts, each "
            "switching its own proxy); for blue/green between two Droplet groups give blue_tag, green_tag and "
            "load_balancer_id or reserved_ip instead of tag",
        ),
        (
            {"blue_tag": "shop-blue", "load_balancer_id": LB},
            {},
            "deployment_config.hosts.droplets.green_tag: required with blue_tag (the other Droplet group); add it",
        ),
        (
            {"blue_tag": "shop", "green_tag": "shop", "load_balancer_id": LB},
            {},
            "deployment_config.hosts.droplets.green_tag: 'shop' is blue_tag too; the two groups need different tags",
        ),
        (
            {"blue_tag": "a", "green_tag": "b"},
            {},
            "deployment_config.hosts.droplets.load_balancer_id: required with blue_tag/green_tag: the load balancer "
            "(or reserved_ip) that moves to the new group",
        ),
        (
            {"blue_tag": "a", "green_tag": "b", "load_balancer_id": LB, "reserved_ip": "198.51.100.7"},
            {},
            "deployment_config.hosts.droplets.reserved_ip: give load_balancer_id or reserved_ip, not both (what "
            "moves between the groups)",
        ),
        (
            {"blue_tag": "a", "green_tag": "b", "load_balancer_id": LB},
            {"strategy": "rolling"},
            "deployment_config.strategy: 'rolling' cannot run on two Droplet groups switched as a whole; use "
            "blue_green, or hosts.droplets.tag (every host switches its own proxy) for rolling or canary",
        ),
        (
            {},
            {},
            "deployment_config.hosts.droplets.tag: required (the Droplets to deploy to); or blue_tag and green_tag "
            "with load_balancer_id or reserved_ip for blue/green between two Droplet groups",
        ),
    ],
    ids=["tag-with-lb", "one-group", "same-tags", "no-switch", "two-switches", "rolling", "empty"],
)
def test_the_descriptor_names_the_field_of_a_bad_droplets_block(
    tmp_path: Path, droplets: dict[str, Any], deployment: dict[str, Any], problem: str
) -> None:
    assert _problems(droplets, tmp_path, **deployment) == (problem,)


def test_the_schema_refuses_bad_values_by_field(tmp_path: Path) -> None:
    problems = _problems({"tag": "shop web", "address": "both", "reserved_ip": "300.1.1.1"}, tmp_path)
    joined = "\n".join(problems)
    for field in ("droplets.tag", "droplets.address", "droplets.reserved_ip"):
        assert field in joined, joined


def test_listed_and_found_hosts_together_are_refused(tmp_path: Path) -> None:
    document = droplets_document({"tag": "shop"})
    document["deployment_config"]["hosts"]["hosts"] = [{"address": "10.0.0.11"}]
    with pytest.raises(ConfigError) as error:
        parse_config(document, tmp_path)
    assert error.value.problems == (
        "deployment_config.hosts.droplets: give either deployment_config.hosts.hosts (listed) or hosts.droplets "
        "(found by tag), not both",
    )


def test_a_bad_droplets_block_exits_2_through_the_action_and_calls_no_api(
    sim: DoSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = droplets_document({"blue_tag": "shop-blue", "green_tag": "shop-green"})
    write_config(tmp_path, document)
    env = {**droplets_env(sim, tmp_path), "GITHUB_OUTPUT": str(tmp_path / "out"), "DATABASE_URL": "postgresql://x"}
    done = execute({"config": "deploy.json", "version": "v2", "validation-run-id": "run-1", "mode": "deploy"}, env)
    assert done.exit_code == 2
    told = capsys.readouterr().err
    assert "deployment_config.hosts.droplets.load_balancer_id: required with blue_tag/green_tag" in told
    assert "Traceback" not in told and env[TOKEN_VAR] not in told
    assert sim.calls == []
