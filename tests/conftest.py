"""Session-wide real peers. PostgreSQL starts once per session; each test gets its own database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers import postgres
from tests.peers.http import HttpPeer


@pytest.fixture(scope="session")
def pg_server() -> Iterator[postgres.PostgresServer]:
    try:
        server = postgres.start_server()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    postgres.stop_server(server)


@pytest.fixture
def pg_dsn(pg_server: postgres.PostgresServer) -> Iterator[str]:
    """A DSN (with password) of a fresh, empty database for this test alone."""
    name = pg_server.create_database()
    yield pg_server.dsn(name)
    pg_server.drop_database(name)


@pytest.fixture
def http_peer() -> Iterator[HttpPeer]:
    """A fresh real HTTP server on 127.0.0.1 with programmable routes (tests/peers/http.py)."""
    peer = HttpPeer()
    yield peer
    peer.close()
