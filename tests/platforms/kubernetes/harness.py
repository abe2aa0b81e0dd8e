"""Kubernetes for the conformance suite: the API emulator driven by the real client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.peers.k8s_emulator import K8sEmulator
from tests.platforms.harness import Harness, image, quick
from tests.workspace import base_config


def document() -> dict[str, Any]:
    config = quick(base_config())
    config["deployment_config"] = {
        "strategy": "blue_green",
        "platform": "kubernetes",
        "k8s_namespace": "prod",
        "k8s_deployment": "shop",
        "k8s_progress_deadline_seconds": 10,
    }
    config["credentials"]["k8s_kubeconfig_env_var"] = "KUBECONFIG_CONTENT"
    return config


def build(tmp_path: Path) -> Harness:
    emu = K8sEmulator()
    emu.seed_app("shop", namespace="prod", version="v1", replicas=4)
    env = {"GITHUB_WORKSPACE": str(tmp_path), "KUBECONFIG_CONTENT": emu.kubeconfig()}
    return Harness(
        "kubernetes",
        document(),
        tmp_path,
        env,
        make_unhealthy=lambda version: emu.set_health(version, False),
        answered=lambda r: str(r.json()["version"]),
        image=image,
        closers=[emu.close],
    )
