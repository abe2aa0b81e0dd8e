"""The recovery tests' peers: agentbench receiving the crashed runs' pairs, and one site per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.agentbench import AgentbenchPeer
from tests.recovery.matrix import TOKEN, Site


@pytest.fixture
def agentbench() -> Iterator[AgentbenchPeer]:
    with AgentbenchPeer(token=TOKEN) as peer:
        yield peer


@pytest.fixture
def site(tmp_path: Path, pg_dsn: str, agentbench: AgentbenchPeer) -> Iterator[Site]:
    """A workspace, database and public address; its release processes are stopped afterwards."""
    site = Site(tmp_path, pg_dsn, agentbench)
    yield site
    site.stop()
