"""Deployment log archives: presigned links never printed, a cut never splits a line."""

from __future__ import annotations

import logging

import pytest

from orchestrator.platforms.digitalocean import logs
from tests.peers.http import HttpPeer, Reply

SIGNATURE = "X-Amz-Signature=f00dfeedsecret9a7e"


def test_a_failed_archive_download_never_prints_the_presigned_query(
    http_peer: HttpPeer, caplog: pytest.LogCaptureFixture
) -> None:
    http_peer.route("GET", "/archive", Reply(403, {"error": "expired"}))
    url = f"{http_peer.url}/archive?{SIGNATURE}&token=abc"
    with caplog.at_level(logging.WARNING):
        lines = logs._read_archives({"historic_urls": [url], "live_url": f"wss://x/?{SIGNATURE}"}, True)
    assert "f00dfeedsecret9a7e" not in caplog.text + "\n".join(lines)
    assert "could not download a deployment log archive" in caplog.text


def test_the_newest_window_starts_at_a_whole_line(http_peer: HttpPeer) -> None:
    body = "".join(f"line {n:06d} of the build\n" for n in range(10_000))
    http_peer.route("GET", "/archive", Reply(200, body))
    lines = logs._read_archives({"historic_urls": [f"{http_peer.url}/archive"]}, True)
    assert lines[-1] == "line 009999 of the build"
    assert all(line.startswith("line ") and line.endswith("of the build") for line in lines)
    assert sum(len(line) + 1 for line in lines) <= logs.MAX_BYTES
