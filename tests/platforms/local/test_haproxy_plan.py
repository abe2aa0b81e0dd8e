"""The haproxy data plane's plan: server names, weights, and the order of runtime-API commands."""

from __future__ import annotations

import pytest

from orchestrator.platforms.local.haproxy_plan import (
    Server,
    commands,
    config_text,
    server_name,
    version_of,
    wanted_servers,
)


@pytest.mark.parametrize("version", ["v1", "1.2.3+build.7", "a_b:c-r2", "x-r"])
def test_server_names_are_haproxy_names_and_give_their_release_back(version: str) -> None:
    name = server_name(version, 3)
    assert "+" not in name and "/" not in name
    assert version_of(name) == version


def test_a_release_share_is_spread_over_its_replicas() -> None:
    servers = wanted_servers({"v1": (1001, 1002), "v2": (2001,)}, {"v1": 80, "v2": 20})
    assert {s.name: s.weight for s in servers.values()} == {"v1-r0": 102, "v1-r1": 102, "v2-r0": 51}
    assert servers["v1-r1"].port == 1002


def test_a_release_without_traffic_is_drained_and_a_tiny_share_never_rounds_to_none() -> None:
    servers = wanted_servers({"v1": tuple(range(16)), "v2": (9,)}, {"v1": 1, "v2": 99})
    assert all(s.weight == 1 for n, s in servers.items() if n.startswith("v1"))
    assert wanted_servers({"v1": (1,)}, {})["v1-r0"].weight == 0


def test_a_switch_opens_the_new_release_before_it_drains_the_old() -> None:
    current = {"v1-r0": Server("v1-r0", 1, 256), "v2-r0": Server("v2-r0", 2, 0)}
    steps, gone = commands(current, wanted_servers({"v1": (1,), "v2": (2,)}, {"v2": 100}))
    assert steps == [
        "set weight releases/v2-r0 256",
        "set server releases/v2-r0 state ready",
        "set server releases/v1-r0 state drain",
    ]
    assert gone == []


def test_new_replicas_are_added_and_vanished_ones_put_in_maintenance_then_deleted() -> None:
    current = {"v1-r0": Server("v1-r0", 1, 0)}
    steps, gone = commands(current, wanted_servers({"v2": (7,)}, {"v2": 100}))
    assert steps[0] == (
        "add server releases/v2-r0 127.0.0.1:7 weight 256 "
        "pool-max-conn -1 pool-purge-delay 10s check inter 1s rise 1 fall 1"
    )
    assert steps[1:3] == ["enable health releases/v2-r0", "enable server releases/v2-r0"]
    assert steps[-1] == "set server releases/v1-r0 state maint"
    assert gone == ["v1-r0"]


def test_nothing_changes_nothing_is_sent() -> None:
    wanted = wanted_servers({"v1": (1,), "v2": (2,)}, {"v1": 100})
    assert commands(wanted, wanted) == ([], [])


def test_a_restarted_replica_on_a_new_port_is_readdressed() -> None:
    steps, _ = commands({"v1-r0": Server("v1-r0", 1, 256)}, wanted_servers({"v1": (5,)}, {"v1": 100}))
    assert steps == ["set server releases/v1-r0 addr 127.0.0.1 port 5"]


def test_the_config_describes_the_servers_as_they_are() -> None:
    servers = wanted_servers({"v1": (1,), "v2": (2,)}, {"v1": 100})
    text = config_text(("127.0.0.1", 8080), servers, max_connections=500, stop_seconds=2.5, traffic_threads=2)
    assert "  bind 127.0.0.1:8080 thread 1-2" in text and "  maxconn 500" in text and "hard-stop-after 3s" in text
    assert "  nbthread 3" in text and "level admin expose-fd listeners thread 3" in text, "an admin thread of its own"
    assert "  server v1-r0 127.0.0.1:1 weight 256" in text and "  server v2-r0 127.0.0.1:2 weight 0" in text
    assert "retries 3" in text and "retry-on" not in text, "retries on failed connections, no copy of each request"
