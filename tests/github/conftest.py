"""Peers for the GitHub tests: the local GitHub API, a client on it, and a demo preview platform."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest

from orchestrator.contract import HealthCheckConfig
from orchestrator.github import GitHubClient, RetryPolicy
from orchestrator.health.loop import wait_until_healthy
from orchestrator.health.verdict import CheckVerdict
from orchestrator.redaction import Secret
from tests.github.demo_platform import DemoPreviewPlatform
from tests.peers import github_contract
from tests.peers.github_api import GitHubApiPeer

REPOSITORY = "acme/shop"
COMMITS = frozenset({"a" * 40, "b" * 40})
"""The commits the repository has (the tests deploy these)."""
FAST = RetryPolicy(retries=3, budget_seconds=10.0, initial_wait=0.02, max_wait=0.1)


@pytest.fixture
def token() -> str:
    """A canary: a token value that must never appear in a log, a comment or a status."""
    return "ghs_CANARY" + secrets.token_hex(12)


@pytest.fixture
def github_peer(token: str) -> Iterator[GitHubApiPeer]:
    """The GitHub API with the commits the tests deploy; every exchange must match GitHub's description."""
    if not github_contract.is_available():
        pytest.fail(github_contract.MISSING)
    peer = GitHubApiPeer(token=token, repository=REPOSITORY, commits=COMMITS)
    yield peer
    threading.Thread(target=peer.close, daemon=True).start()
    assert peer.violations == [], "\n".join(peer.violations)


@pytest.fixture
def client(github_peer: GitHubApiPeer, token: str) -> Iterator[GitHubClient]:
    gh = GitHubClient(github_peer.url, REPOSITORY, Secret(token, "github-token"), timeout=2.0, retry=FAST)
    yield gh
    gh.close()


@pytest.fixture
def demo_platform() -> Iterator[DemoPreviewPlatform]:
    platform = DemoPreviewPlatform()
    yield platform
    platform.close()


HEALTH = HealthCheckConfig(
    endpoint="/health", expected_status=200, timeout_seconds=1.0, retries=2, interval_seconds=0.05
)


def health_flow(url: str) -> CheckVerdict:
    """The real health flow against the preview, as the pipeline passes it in."""
    verdict = wait_until_healthy(url, HEALTH)
    return CheckVerdict(verdict.passed, verdict.probes, verdict.reason)
