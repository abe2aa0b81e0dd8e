"""Pre-switch health: the seed's polling flow against real HTTP servers on loopback."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from datetime import datetime

import pytest

from orchestrator.contract import HealthCheckConfig
from orchestrator.errors import HealthError
from orchestrator.health.loop import wait_until_healthy
from orchestrator.redaction import Secret
from tests.peers.http import HttpPeer, Reply, Seen


def config(
    endpoint: str = "/health", *, retries: int = 3, interval: float = 0.01, timeout: float = 2.0, status: int = 200
) -> HealthCheckConfig:
    return HealthCheckConfig(
        endpoint=endpoint, expected_status=status, timeout_seconds=timeout, retries=retries, interval_seconds=interval
    )


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_passes_on_first_healthy_answer(http_peer: HttpPeer) -> None:
    http_peer.route("GET", "/health", Reply(200, {"ok": True}))

    verdict = wait_until_healthy(http_peer.url, config())

    assert verdict.passed and verdict.reason is None
    assert len(verdict.probes) == 1
    probe = verdict.probes[0]
    assert (probe.endpoint, probe.status_code, probe.passed) == ("/health", 200, True)
    assert probe.response_time_ms > 0
    assert probe.timestamp.endswith("Z")
    verdict.raise_if_failed()


def test_passes_after_failures_and_records_what_came_back(http_peer: HttpPeer) -> None:
    http_peer.faults = [Reply(503, "warming up"), Reply(502, "bad gateway from sidecar")]
    http_peer.route("GET", "/health", Reply(200, "ok"))

    verdict = wait_until_healthy(http_peer.url, config(retries=5))

    assert verdict.passed
    assert [p.status_code for p in verdict.probes] == [503, 502, 200]
    assert [p.passed for p in verdict.probes] == [False, False, True]
    assert verdict.probes[0].detail == "expected 200, got 503 Service Unavailable: warming up"
    assert verdict.probes[1].detail == "expected 200, got 502 Bad Gateway: bad gateway from sidecar"
    assert len(http_peer.requests_to("/health")) == 3


def test_fails_after_retries_attempts_with_the_last_answer(http_peer: HttpPeer) -> None:
    http_peer.route("GET", "/health", Reply(500, "database is down"))

    verdict = wait_until_healthy(http_peer.url, config(retries=4), label="v42")

    assert not verdict.passed
    assert len(verdict.probes) == 4
    assert len(http_peer.requests_to("/health")) == 4
    assert verdict.reason == (
        f"v42 {http_peer.url}/health not healthy after 4 attempts: "
        "expected 200, got 500 Internal Server Error: database is down"
    )
    with pytest.raises(HealthError) as raised:
        verdict.raise_if_failed()
    assert raised.value.check == "health" and raised.value.step == "health"


def test_honours_the_interval_between_attempts_and_not_after_the_last(http_peer: HttpPeer) -> None:
    arrivals: list[float] = []

    def unhealthy(_seen: Seen) -> Reply:
        arrivals.append(time.monotonic())
        return Reply(503)

    http_peer.route("GET", "/health", unhealthy)

    verdict = wait_until_healthy(http_peer.url, config(retries=3, interval=1.0))
    returned = time.monotonic()

    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert len(verdict.probes) == 3 and len(gaps) == 2 and all(gap >= 1.0 for gap in gaps), gaps
    # A pause after the last attempt would hold the return a whole interval past the last request.
    assert returned - arrivals[-1] < 1.0, "paused after the last attempt"


def test_expected_status_other_than_200(http_peer: HttpPeer) -> None:
    http_peer.route("GET", "/health", Reply(204))
    assert wait_until_healthy(http_peer.url, config(status=204)).passed
    failed = wait_until_healthy(http_peer.url, config(status=200, retries=1))
    assert failed.probes[0].detail == "expected 200, got 204 No Content (empty body)"


def test_deadline_cuts_the_loop(http_peer: HttpPeer) -> None:
    http_peer.route("GET", "/health", Reply(503))

    started = time.monotonic()
    verdict = wait_until_healthy(http_peer.url, config(retries=100, interval=0.1), deadline=started + 0.5)

    assert not verdict.passed
    assert 1 <= len(verdict.probes) < 100, "the deadline, not the retries, ended the loop"
    assert verdict.reason is not None and "not healthy before the deadline" in verdict.reason
    assert f"({len(verdict.probes)} of 100 attempts)" in verdict.reason


def test_deadline_cuts_a_hanging_attempt(http_peer: HttpPeer) -> None:
    http_peer.route("GET", "/health", Reply(200, delay=5))

    started = time.monotonic()
    verdict = wait_until_healthy(http_peer.url, config(retries=3, timeout=30), deadline=started + 0.4)
    elapsed = time.monotonic() - started

    # Past its 30 s timeout the attempt would have seen the healthy answer at 5 s: the deadline cut it.
    assert not verdict.passed
    assert elapsed >= 0.35
    assert [p.status_code for p in verdict.probes] == [0]
    assert "ReadTimeout" in (verdict.probes[0].detail or "")


def test_timeout_is_a_failed_attempt_with_status_zero(http_peer: HttpPeer) -> None:
    http_peer.faults = [Reply(200, delay=1.0)]
    http_peer.route("GET", "/health", Reply(200))

    verdict = wait_until_healthy(http_peer.url, config(timeout=0.2, retries=2))

    assert verdict.passed
    first = verdict.probes[0]
    assert (first.status_code, first.passed) == (0, False)
    assert first.detail is not None and first.detail.startswith(f"no answer from {http_peer.url}/health: ReadTimeout")
    assert 150 < first.response_time_ms < 600


def test_connection_refused_is_status_zero(refused_url: str) -> None:
    verdict = wait_until_healthy(refused_url, config(retries=2))

    assert not verdict.passed
    assert [p.status_code for p in verdict.probes] == [0, 0]
    assert all("ConnectionError" in (p.detail or "") for p in verdict.probes)


def test_path_joins_the_base_url_keeping_its_own_path(http_peer: HttpPeer) -> None:
    http_peer.route("GET", "/app/health", Reply(200))

    verdict = wait_until_healthy(http_peer.url + "/app/", config("health"))

    assert verdict.passed
    assert len(http_peer.requests_to("/app/health")) == 1


def test_absolute_endpoint_ignores_the_base_url(http_peer: HttpPeer, other_peer: HttpPeer) -> None:
    other_peer.route("GET", "/ready", Reply(200))

    verdict = wait_until_healthy(http_peer.url, config(other_peer.url + "/ready"))

    assert verdict.passed
    assert verdict.probes[0].endpoint == other_peer.url + "/ready"
    assert http_peer.seen == [] and len(other_peer.requests_to("/ready")) == 1


def test_failure_detail_keeps_only_the_start_of_the_body_and_masks_secrets(http_peer: HttpPeer) -> None:
    token = Secret("tok-canary-8f3a1c", name="API_TOKEN")
    http_peer.route("GET", "/health", Reply(500, f"error with {token.reveal()} " + "x" * 1000))

    verdict = wait_until_healthy(http_peer.url, config(retries=1))

    detail = verdict.probes[0].detail or ""
    assert "tok-canary-8f3a1c" not in detail and "***" in detail
    assert len(detail) < 300


def test_a_release_that_dribbles_its_answer_is_cut_at_the_timeout() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def dribble() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while not stop.is_set():
            try:
                conn.sendall(b"1\r\nx\r\n")
            except OSError:
                break
            time.sleep(0.1)
        conn.close()

    threading.Thread(target=dribble, daemon=True).start()
    check = HealthCheckConfig(
        endpoint="/health", expected_status=200, timeout_seconds=0.5, retries=1, interval_seconds=0
    )
    began = time.monotonic()
    verdict = wait_until_healthy(f"http://127.0.0.1:{server.getsockname()[1]}", check)
    stop.set()
    server.close()
    assert not verdict.passed
    assert time.monotonic() - began < 10, "the body never ends: only a total timeout returns at all"
