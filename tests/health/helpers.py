"""Small builders shared by the verification tests."""

from __future__ import annotations

from typing import Any

from orchestrator.contract import HealthCheckConfig, VerificationConfig
from tests.peers.http import HttpPeer, Reply

HEALTH = HealthCheckConfig(endpoint="/health", expected_status=200, timeout_seconds=2, retries=1, interval_seconds=0)


def vconfig(**fields: Any) -> VerificationConfig:
    """Fast defaults: one attempt per check, short interval, a 5 s deadline."""
    defaults: dict[str, Any] = {"deadline_seconds": 5.0, "retries": 1, "interval_seconds": 0.01}
    return VerificationConfig(**{**defaults, **fields})


def healthy(peer: HttpPeer) -> HttpPeer:
    peer.route("GET", "/health", Reply(200, "ok"))
    return peer
