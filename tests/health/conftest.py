"""Peers for the health and verification tests: a Prometheus query API, a port nobody answers on."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.peers.http import HttpPeer
from tests.peers.prometheus import PrometheusPeer


@pytest.fixture
def prometheus() -> Iterator[PrometheusPeer]:
    peer = PrometheusPeer()
    yield peer
    peer.close()


def _close_in_background(peer: HttpPeer) -> None:
    # HttpPeer's serve_forever polls every 0.5 s, so close() blocks that long; every peer has its own
    # port, so letting it wind down off the test's clock changes nothing the next test sees.
    threading.Thread(target=peer.close, daemon=True).start()


@pytest.fixture
def http_peer() -> Iterator[HttpPeer]:
    """The shared `http_peer`, closed without waiting for its poll loop."""
    peer = HttpPeer()
    yield peer
    _close_in_background(peer)


@pytest.fixture
def other_peer() -> Iterator[HttpPeer]:
    """A second, separate HTTP server (for checks given as absolute URLs)."""
    peer = HttpPeer()
    yield peer
    _close_in_background(peer)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung peer)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield int(listener.getsockname()[1])
    listener.close()
