"""Which hosts a share moves: canary hosts first, then config order, in units of max_parallel or label groups."""

from __future__ import annotations

from orchestrator.platforms.hosts.order import moved_hosts, units
from orchestrator.platforms.hosts.settings import HostConfig


def _host(address: str, **labels: str) -> HostConfig:
    return HostConfig(address=address, labels=tuple(sorted(labels.items())))


HOSTS = [
    _host("10.0.0.1", zone="a"),
    _host("10.0.0.2", zone="b"),
    _host("10.0.0.3", zone="a", role="canary"),
    _host("10.0.0.4", zone="b"),
    _host("10.0.0.5"),
]


def test_without_labels_hosts_move_in_config_order_max_parallel_at_a_time() -> None:
    made = units(HOSTS, canary_labels={}, group_by=None, max_parallel=2)
    assert made == [("10.0.0.1", "10.0.0.2"), ("10.0.0.3", "10.0.0.4"), ("10.0.0.5",)]
    assert moved_hosts(made, 34) == {"10.0.0.1", "10.0.0.2"}
    assert moved_hosts(made, 1) == {"10.0.0.1", "10.0.0.2"}, "at least one unit while above 0"
    assert moved_hosts(made, 0) == set()
    assert moved_hosts(made, 67) == {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}
    assert moved_hosts(made, 100) == {h.name for h in HOSTS}


def test_canary_hosts_move_first_whatever_their_place_in_the_config() -> None:
    made = units(HOSTS, canary_labels={"role": "canary"}, group_by=None, max_parallel=1)
    assert made[0] == ("10.0.0.3",)
    assert [u[0] for u in made[1:]] == ["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5"]
    assert moved_hosts(made, 10) == {"10.0.0.3"}
    assert units(HOSTS, canary_labels={"role": "canary", "zone": "b"}, group_by=None, max_parallel=1)[0] == (
        "10.0.0.1",
    ), "a canary carries every label asked for"


def test_group_by_moves_a_label_group_at_a_time_the_canary_group_first_and_unlabelled_hosts_last() -> None:
    made = units(HOSTS, canary_labels={"role": "canary"}, group_by="zone", max_parallel=1)
    assert made == [("10.0.0.3", "10.0.0.1"), ("10.0.0.2", "10.0.0.4"), ("10.0.0.5",)]
    assert moved_hosts(made, 34) == {"10.0.0.3", "10.0.0.1"}
    assert moved_hosts(made, 67) == {"10.0.0.3", "10.0.0.1", "10.0.0.2", "10.0.0.4"}
