"""Sticky canary pins survive a supervisor restart (real supervisor, proxy and demo releases).

The supervisor saves the sticky rule with the weights it routes (state.json); the pins themselves
live where they already survive it: a cookie's in the client, a header value's in the proxy
process, which keeps serving while the supervisor is away. A supervisor started again pushes the
split with its rule, so no pinned client is re-dealt mid-canary. Without the rule the restored
split would route by weight alone, moving about half the clients to the other release.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
from collections.abc import Callable

import pytest

from orchestrator.contract.canary import Stickiness
from orchestrator.platforms.local import LocalPlatform, read_status, supervisor_status
from tests.platforms.local.test_no_single_point import is_running, proxy_pid, wait_for

Factory = Callable[..., LocalPlatform]
CLIENTS = 24


class Client:
    """One keep-alive connection with its own cookie jar (or its own user header)."""

    def __init__(self, url: str, index: int, header: str | None) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        self.headers = {header: f"user-{index}"} if header else {}
        self.cookie: str | None = None

    def version(self) -> str:
        headers = dict(self.headers)
        if self.cookie:
            headers["Cookie"] = self.cookie
        self.conn.request("GET", "/version", headers=headers)
        response = self.conn.getresponse()
        body = response.read()
        set_cookie = response.getheader("Set-Cookie")
        if set_cookie:
            self.cookie = set_cookie.split(";", 1)[0]
        return str(json.loads(body)["version"])


@pytest.mark.parametrize("sticky", [Stickiness(cookie="release"), Stickiness(cookie=None, header="X-User")])
def test_pinned_clients_keep_their_release_across_a_supervisor_restart(
    platform_factory: Factory, sticky: Stickiness
) -> None:
    platform = platform_factory()
    platform.start("v1", None)
    platform.route({"v1": 100})
    platform.start("v2", None)
    platform.route_sticky({"v1": 50, "v2": 50}, sticky)
    clients = [Client(platform.live_url(), i, sticky.header) for i in range(CLIENTS)]
    pinned = {i: c.version() for i, c in enumerate(clients)}
    assert set(pinned.values()) == {"v1", "v2"}, "the clients are spread over both releases"
    before = read_status(platform.paths.root)
    assert before is not None
    proxy = proxy_pid(platform)

    os.kill(before.pid, signal.SIGKILL)
    wait_for(lambda: not is_running(before.pid))
    shown = supervisor_status(platform._config, platform._workspace)  # starts it again, as any CLI call does

    assert shown["pid"] != before.pid and shown["weights"] == {"v1": 50, "v2": 50}
    assert proxy_pid(platform) == proxy, "the proxy process served on, holding the header pins"
    for _ in range(3):
        got = {i: c.version() for i, c in enumerate(clients)}
        assert got == pinned, "a pinned client was moved to the other release by the restart"
    for client in clients:
        client.conn.close()
