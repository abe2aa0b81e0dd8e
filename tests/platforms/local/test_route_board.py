"""The routing board: a route call writes the routing into memory the proxy process shares, and the data
plane takes it before its next request, with no call into the proxy at all."""

from __future__ import annotations

import http.client
import os
from collections.abc import Callable, Iterator

import pytest

from orchestrator.platforms.local.proxy import Limits, Proxy
from orchestrator.platforms.local.route_board import RouteBoard
from tests.platforms.local.conftest import DemoRelease, ProxyHarness
from tests.platforms.local.test_proxy import get_version, local_port


def test_what_one_mapping_writes_another_reads_and_a_torn_read_is_refused() -> None:
    writer = RouteBoard.create()
    reader = RouteBoard(os.dup(writer.fd))  # as the proxy process maps the descriptor it inherits
    try:
        assert reader.read() is None  # nothing published yet
        writer.write({"v1": 90, "v2": 10}, {"cookie": "pin", "header": None})
        first = reader.read()
        assert first is not None
        assert (first.weights, first.sticky) == ({"v1": 90, "v2": 10}, {"cookie": "pin", "header": None})
        writer.write({"v2": 100}, None)
        second = reader.read()
        assert second is not None and second.weights == {"v2": 100} and second.sticky is None
        assert second.generation == reader.generation() != first.generation

        mapping = writer._map
        mapping[0] |= 1  # a writer caught between its two generation stores
        assert reader.read() is None
        mapping[0] &= ~1 & 0xFF
        mapping[20] ^= 0xFF  # a payload byte changed under the reader: the checksum no longer matches
        assert reader.read() is None
    finally:
        reader.close()
        writer.close()


class BoardProxy(ProxyHarness):
    def __init__(self, board: RouteBoard) -> None:
        self.board = board
        super().__init__()

    async def _make(self, limits: Limits | None) -> Proxy:
        return Proxy(limits, self.board)


@pytest.fixture
def board_proxy() -> Iterator[BoardProxy]:
    board = RouteBoard.create()
    harness = BoardProxy(board)
    yield harness
    harness.close()
    board.close()


def test_the_data_plane_takes_a_new_routing_from_the_board_before_its_next_request(
    board_proxy: BoardProxy, demo_release: Callable[[str], DemoRelease]
) -> None:
    v1, v2, v3 = demo_release("v1"), demo_release("v2"), demo_release("v3")
    board_proxy.add("v1", v1.port)
    board_proxy.add("v2", v2.port)
    board = board_proxy.board
    board.write({"v1": 100}, None)
    conn = http.client.HTTPConnection("127.0.0.1", board_proxy.port, timeout=5)
    assert [get_version(conn) for _ in range(2)] == ["v1", "v1"]
    before = local_port(conn)

    board.write({"v2": 100}, None)  # nothing else: no call into the proxy
    assert get_version(conn) == "v2"
    assert local_port(conn) == before, "the client connection must survive the switch"

    # A routing naming a release the proxy does not serve yet waits for its backend (a `sync`).
    board.write({"v3": 100}, None)
    assert get_version(conn) == "v2"
    board_proxy.add("v3", v3.port)
    assert get_version(conn) == "v3"
    assert board_proxy.call(board_proxy.proxy.weights) == {"v3": 100}
    conn.close()
