"""Session-wide real peers. PostgreSQL starts once per session; each test gets its own database."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.peers import postgres, ssh_hosts
from tests.peers.http import HttpPeer

# CI replays the same examples every run, so a red property test reproduces; developers explore.
settings.register_profile(
    "ci", derandomize=True, database=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[postgres.PostgresServer]:
    try:
        server = postgres.start_server()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    postgres.stop_server(server)


@pytest.fixture(scope="session")
def pg_databases(pg_server: postgres.PostgresServer) -> Iterator[postgres.DatabasePool]:
    pool = postgres.DatabasePool(pg_server)
    yield pool
    pool.close()


@pytest.fixture
def pg_dsn(pg_server: postgres.PostgresServer, pg_databases: postgres.DatabasePool) -> Iterator[str]:
    """A DSN (with password) of a fresh, empty database for this test alone."""
    name = pg_databases.take()
    yield pg_server.dsn(name)
    pg_databases.give_back(name)


@pytest.fixture(scope="session")
def ssh_fleets() -> Iterator[Callable[[int], ssh_hosts.Fleet]]:
    """Start SSH host fleets (tests/peers/ssh_hosts.py); every one is removed at the end of the session
    at the latest, also when a test failed before closing its own."""
    made: list[ssh_hosts.Fleet] = []

    def start(count: int) -> ssh_hosts.Fleet:
        problem = ssh_hosts.missing_tools()
        if problem:
            pytest.fail(problem, pytrace=False)
        fleet = ssh_hosts.start_fleet(count)
        made.append(fleet)
        return fleet

    yield start
    for fleet in made:
        fleet.close()


@pytest.fixture
def ssh_fleet(ssh_fleets: Callable[[int], ssh_hosts.Fleet]) -> Iterator[ssh_hosts.Fleet]:
    """Three fresh SSH hosts, removed after the test."""
    fleet = ssh_fleets(3)
    yield fleet
    fleet.close()


@pytest.fixture
def http_peer() -> Iterator[HttpPeer]:
    """A fresh real HTTP server on 127.0.0.1 with programmable routes (tests/peers/http.py)."""
    peer = HttpPeer()
    yield peer
    peer.close()


@pytest.fixture
def refused_url() -> str:
    """A loopback URL whose port was just released: connecting is refused (a peer that is down)."""
    return f"http://127.0.0.1:{postgres.free_port()}"
