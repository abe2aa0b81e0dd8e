"""The whole Action on Kubernetes: the real `kubernetes` client against the API emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.artifacts import digest_artifacts
from orchestrator.cli import Execution, execute
from orchestrator.config import parse_config
from tests.peers.k8s_emulator import K8sEmulator
from tests.peers.verdicts import seed_passed
from tests.workspace import base_config, write_config

IMAGE = "ghcr.io/acme/shop@sha256:" + "cd" * 32


@pytest.fixture
def emu() -> Iterator[K8sEmulator]:
    emulator = K8sEmulator()
    emulator.seed_app("shop", namespace="prod", version="v1", replicas=2)
    yield emulator
    emulator.close()
    assert emulator.violations == [], "\n".join(emulator.violations)


def deploy(
    tmp_path: Path, emu: K8sEmulator, dsn: str, version: str, mode: str = "deploy", **deployment: Any
) -> Execution:
    config = base_config()
    config["deployment_config"] = {
        "strategy": "blue_green",
        "platform": "kubernetes",
        "k8s_namespace": "prod",
        "k8s_deployment": "shop",
        "k8s_progress_deadline_seconds": 10,
        **deployment,
    }
    config["credentials"]["k8s_kubeconfig_env_var"] = "KUBECONFIG_CONTENT"
    config["artifacts"]["docker_image"] = IMAGE
    config["health_check"].update(retries=2, interval_seconds=0.1)
    write_config(tmp_path, config)
    digests = digest_artifacts(parse_config(config, tmp_path).artifacts, tmp_path)
    seed_passed(dsn, f"run-{version}", digests)
    env = {
        "GITHUB_WORKSPACE": str(tmp_path),
        "DATABASE_URL": dsn,
        "KUBECONFIG_CONTENT": emu.kubeconfig(),
        "AGENTBENCH_TOKEN": "t0ken-canary-k8s",
    }
    raw = {"config": "deploy.json", "version": version, "validation-run-id": f"run-{version}", "mode": mode}
    return execute(raw, env)


def selector(emu: K8sEmulator) -> str | None:
    service: dict[str, Any] = emu.get("services", "prod", "shop") or {}
    return (service.get("spec") or {}).get("selector", {}).get("deploy-orchestrator/version")


def test_a_blue_green_release_flips_the_service(tmp_path: Path, emu: K8sEmulator, pg_dsn: str) -> None:
    done = deploy(tmp_path, emu, pg_dsn, "v2")
    assert done.exit_code == 0, done.result and done.result.error
    assert done.result is not None
    assert done.result.deployment_details.previous_version == "v1"
    assert selector(emu) == "v2"
    assert emu.get("deployments", "prod", "shop-v2") is not None


def test_an_unhealthy_release_never_gets_the_service(tmp_path: Path, emu: K8sEmulator, pg_dsn: str) -> None:
    emu.set_health("v2", False)
    done = deploy(tmp_path, emu, pg_dsn, "v2")
    assert done.exit_code == 1
    assert done.result is not None
    assert done.result.status == "rolled_back", done.result.error
    assert selector(emu) == "v1"


def test_a_manual_rollback_after_an_automatic_one_on_rolling_returns_to_the_release_before(
    tmp_path: Path, emu: K8sEmulator, pg_dsn: str
) -> None:
    """Issue 11, point 7: after bad4 was rolled back automatically (v3 serving), `mode: rollback`
    goes to v2, never to bad4, and a second one to v1."""
    for version in ("v2", "v3"):
        done = deploy(tmp_path, emu, pg_dsn, version, strategy="rolling")
        assert done.exit_code == 0, done.result and done.result.error
    emu.set_health("bad4", False)
    failed = deploy(tmp_path, emu, pg_dsn, "bad4", strategy="rolling")
    assert failed.result is not None and failed.result.status == "rolled_back", failed.result.error
    assert selector(emu) == "v3"

    back = deploy(tmp_path, emu, pg_dsn, "v3", mode="rollback", strategy="rolling")

    assert back.exit_code == 0, back.result and back.result.error
    assert back.result is not None
    assert [e.message for e in back.result.logs if e.message.startswith("manual rollback")] == [
        "manual rollback from v3 to v2"
    ]
    assert selector(emu) == "v2"
    again = deploy(tmp_path, emu, pg_dsn, "v2", mode="rollback", strategy="rolling")
    assert again.exit_code == 0, again.result and again.result.error
    assert selector(emu) == "v1"
