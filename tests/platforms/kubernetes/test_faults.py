"""API faults as the real client meets them: conflicts, throttling, server errors, resets, bad tokens."""

from __future__ import annotations

import logging

import pytest
import requests

from orchestrator.errors import DeployError
from orchestrator.platforms.kubernetes.api import RetryPolicy
from orchestrator.platforms.kubernetes.manifest import release_deployment
from tests.peers.k8s_emulator import Fault, K8sEmulator

from .conftest import APP, NAMESPACE, RUN, MakePlatform, selector_version, versions_seen

SERVICE = rf"/api/v1/namespaces/{NAMESPACE}/services/{APP}"
DEPLOYMENTS = rf"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"


def test_a_concurrent_change_to_the_service_is_kept_and_the_switch_retried(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    platform.start("v2", None)
    # Someone (a GitOps controller, a person) edits the Service between our read and our write: the
    # switch reads the Service once to see where it points, then once more to update it.
    emu.after_request("GET", SERVICE, lambda: emu.annotate("services", NAMESPACE, APP, "team", "payments"), skip=1)

    platform.route({"v2": 100})

    assert selector_version(emu) == "v2"
    service = emu.get("services", NAMESPACE, APP)
    assert service is not None and service["metadata"]["annotations"]["team"] == "payments"
    writes = [status for method, path, status in emu.calls if method == "PUT" and path == SERVICE]
    assert writes == [409, 200], "the stale write was refused, then re-applied on a fresh read"


def test_a_release_deployment_created_meanwhile_is_adopted_not_duplicated(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    seeded = emu.get("deployments", NAMESPACE, APP)
    assert seeded is not None
    theirs = release_deployment(
        seeded,
        app=APP,
        version="v2",
        image=None,
        replicas=4,
        total=4,
        container=None,
        run=RUN,
        started_at="2026-01-01T00:00:00Z",
        progress_deadline=5,
    )
    # Another run creates shop-v2 right after we looked and found none: our create gets 409 AlreadyExists.
    emu.after_request("GET", rf"{DEPLOYMENTS}/shop-v2", lambda: emu.create("deployments", NAMESPACE, theirs))

    release = platform.start("v2", None)

    assert release.ref == "shop-v2"
    assert (("POST", DEPLOYMENTS, 409)) in emu.calls
    assert versions_seen(release.url or "", 4) == {"v2": 4}


def test_throttling_and_server_errors_are_retried(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    emu.add_fault(Fault("GET", SERVICE, status=429, retry_after=0.05, times=2))
    emu.add_fault(Fault("POST", DEPLOYMENTS, status=503, times=1))
    emu.add_fault(Fault("GET", rf"{DEPLOYMENTS}/shop-v2", status=500, times=1))

    release = platform.start("v2", None)

    assert release.version == "v2"
    assert emu.count("GET", SERVICE) >= 3
    assert [s for m, p, s in emu.calls if m == "POST" and p == DEPLOYMENTS] == [503, 201]


def test_dropped_connections_are_retried(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    emu.add_fault(Fault("GET", SERVICE, reset=True, times=1))

    assert platform.live() is not None


def test_persistent_server_errors_give_up_after_bounded_attempts(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform(retry=RetryPolicy(retries=2, initial_wait=0.01, max_wait=0.02))
    emu.add_fault(Fault("GET", SERVICE, status=503, times=None))

    with pytest.raises(DeployError) as error:
        platform.live()

    assert "get service shop in namespace prod: HTTP 503" in str(error.value)
    assert "still failing after 3 attempts" in str(error.value)
    assert error.value.platform == "kubernetes" and error.value.operation == "get service shop"
    assert emu.count("GET", SERVICE) == 3


def test_a_long_retry_after_fails_at_once(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    emu.add_fault(Fault("GET", SERVICE, status=429, retry_after=3600, times=None))

    with pytest.raises(DeployError, match="asks to wait 3600 s"):
        platform.live()
    assert emu.count("GET", SERVICE) == 1


def test_a_rejected_token_is_a_clear_error_and_never_printed(
    emu: K8sEmulator, make_platform: MakePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "tok-CANARY-7f3a9d21e5"
    caplog.set_level(logging.DEBUG)
    platform = make_platform(token=canary)

    with pytest.raises(DeployError) as error:
        platform.start("v2", None)

    message = str(error.value)
    assert "the API server rejected the credentials (HTTP 401 Unauthorized" in message
    assert "$KUBECONFIG_CONTENT" in message
    assert canary not in message
    assert canary not in repr(error.value.__cause__) and canary not in str(error.value.__context__)
    assert canary not in caplog.text
    assert emu.count("POST") == 0, "nothing was created with a bad token"


def test_the_local_proxy_forwards_only_service_proxy_paths(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    live_url = platform.live_url()
    base = live_url.split("/api/")[0]

    secrets = requests.get(f"{base}/api/v1/namespaces/{NAMESPACE}/secrets", timeout=5)
    elsewhere = requests.get(f"{base}/api/v1/namespaces/kube-system/services/dns:53/proxy/", timeout=5)

    assert secrets.status_code == 403 and elsewhere.status_code == 403
    assert emu.count(pattern=r".*/secrets") == 0
    assert requests.get(live_url + "health", timeout=5).status_code == 200
