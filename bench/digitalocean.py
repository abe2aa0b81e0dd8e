"""API calls and wall time of one deploy and one rollback on App Platform, against the simulator.

Phase timings are realistic ones scaled down by SCALE (a 170 s deploy runs in 3.4 s); our polling
backoff is scaled by the same factor, so the call counts are those a real deploy would make. As a
peer, the figures digitalocean/app_action would need are computed for the same phases (it polls a
deployment every 2 s with no backoff): computed, not measured.

Run: python bench/digitalocean.py   (loopback only, well under a minute)
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from orchestrator.artifacts import ArtifactDigests
from orchestrator.contract import DeploymentConfig, HealthCheckConfig
from orchestrator.platforms.digitalocean.adapter import DigitalOceanPlatform
from orchestrator.platforms.digitalocean.api import RetryPolicy
from orchestrator.platforms.digitalocean.watch import Backoff
from orchestrator.redaction import Secret
from tests.peers import do_contract
from tests.peers.do_simulator import DoSimulator

SCALE = 0.02
REAL_PHASES = {"PENDING_BUILD": 10.0, "BUILDING": 90.0, "PENDING_DEPLOY": 10.0, "DEPLOYING": 60.0}
REAL_BACKOFF = Backoff()
APP_ACTION_POLL = 2.0


def main() -> None:
    sim = DoSimulator(phases={k: v * SCALE for k, v in REAL_PHASES.items()}, validate=True)
    if not sim.validate:
        sim.close()
        sys.exit(
            f"the DigitalOcean OpenAPI description is missing ({do_contract.SPEC_PATH}); spec validation must be on"
        )
    try:
        app_id = sim.seed_app(
            "shop", version="v1", image={"registry_type": "DOCR", "repository": "shop", "digest": "sha256:" + "01" * 32}
        )
        platform = _platform(sim, app_id)
        platform.live()  # warm the connection: both runs below start on an open one

        before = len(sim.calls)
        started = time.perf_counter()
        platform.start("v2", "registry.digitalocean.com/acme/shop@sha256:" + "ab" * 32)
        deploy_s = time.perf_counter() - started
        deploy_calls = len(sim.calls) - before
        assert requests.get(platform.live_url() + "/version", timeout=5).text == "v2"

        previous = platform.releases()[1]
        before = len(sim.calls)
        started = time.perf_counter()
        platform.rollback(previous)
        platform.confirm_rollback(healthy=True)
        rollback_s = time.perf_counter() - started
        rollback_calls = len(sim.calls) - before
        assert requests.get(platform.live_url() + "/version", timeout=5).text == "v1"

        # An app built from git: the same deploy, each look also holding the build to the validated commit.
        sim.git_push("acme/shop", "main")
        git_app = sim.seed_app("shop-git", version="v1", git={"github": {"repo": "acme/shop", "branch": "main"}})
        validated = sim.git_push("acme/shop", "main")
        from_git = _platform(sim, git_app)
        from_git.live()
        from_git.pin_artifacts("v2", ArtifactDigests((), (), None, False, source_commit=validated))
        before = len(sim.calls)
        started = time.perf_counter()
        from_git.start("v2", None)
        git_deploy_s = time.perf_counter() - started
        git_deploy_calls = len(sim.calls) - before
        built = sim.app_json(git_app)["active_deployment"]["services"][0]["source_commit_hash"]
        assert built == validated, built
    finally:
        sim.close()
    if sim.violations:
        sys.exit("requests or answers outside DigitalOcean's OpenAPI description:\n" + "\n".join(sim.violations))

    deploy_real = sum(REAL_PHASES.values())
    rollback_real = REAL_PHASES["PENDING_DEPLOY"] + REAL_PHASES["DEPLOYING"]
    # app_action: list apps, PUT, list deployments, a poll every 2 s, then GET the app for live_url.
    peer_deploy_calls = 3 + math.ceil(deploy_real / APP_ACTION_POLL) + 1
    peer_deploy_s = math.ceil(deploy_real / APP_ACTION_POLL) * APP_ACTION_POLL
    peer_rollback_calls = 2 + math.ceil(rollback_real / APP_ACTION_POLL) + 1

    rows = [
        ("deploy", "ours (measured)", deploy_calls, deploy_s, deploy_s / SCALE),
        ("deploy", "app_action 2 s poll (computed)", peer_deploy_calls, peer_deploy_s * SCALE, peer_deploy_s),
        ("deploy from git", "ours (measured)", git_deploy_calls, git_deploy_s, git_deploy_s / SCALE),
        ("rollback+commit", "ours (measured)", rollback_calls, rollback_s, rollback_s / SCALE),
        (
            "rollback+commit",
            "2 s poll, same phases (computed)",
            peer_rollback_calls,
            math.ceil(rollback_real / APP_ACTION_POLL) * APP_ACTION_POLL * SCALE,
            math.ceil(rollback_real / APP_ACTION_POLL) * APP_ACTION_POLL,
        ),
    ]
    print(f"App Platform simulator, phases {REAL_PHASES} s real, scaled x{SCALE} ({deploy_real:.0f} s deploy)")
    print(f"our polling: backoff {REAL_BACKOFF.initial:g} s x{REAL_BACKOFF.factor:g} up to {REAL_BACKOFF.maximum:g} s")
    print("every request and answer checked against DigitalOcean's OpenAPI description: 0 violations")
    print()
    print(f"{'operation':<16} {'who':<34} {'API calls':>9} {'wall s':>8} {'real-equiv s':>13}")
    for operation, who, calls, wall, real in rows:
        print(f"{operation:<16} {who:<34} {calls:>9} {wall:>8.2f} {real:>13.0f}")
    print()
    print(
        f"digitalocean: deploy_calls={deploy_calls} rollback_calls={rollback_calls} "
        f"deploy_s={deploy_s:.2f} rollback_s={rollback_s:.2f} git_deploy_calls={git_deploy_calls}"
    )


def _platform(sim: DoSimulator, app_id: str) -> DigitalOceanPlatform:
    return DigitalOceanPlatform(
        DeploymentConfig(strategy="blue_green", platform="digitalocean", do_app_id=app_id),
        HealthCheckConfig(endpoint="/health", expected_status=200, timeout_seconds=5, retries=3, interval_seconds=2),
        Secret(sim.token, name="DIGITALOCEAN_TOKEN"),
        endpoint=sim.url,
        verify=sim.ca_bundle,
        backoff=Backoff(REAL_BACKOFF.initial * SCALE, REAL_BACKOFF.factor, REAL_BACKOFF.maximum * SCALE),
        retry=RetryPolicy(),
    )


if __name__ == "__main__":
    main()
