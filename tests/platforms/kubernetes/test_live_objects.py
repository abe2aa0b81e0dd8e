"""The adapters against objects as full as a real API server returns them (every default filled,
managed fields, status, revision annotations): they copy what they must and send back only what
they own."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.errors import DeployError
from orchestrator.platforms.base import Release
from tests.peers.k8s_emulator import K8sEmulator

from .conftest import APP, NAMESPACE, MakePlatform


def _template(emu: K8sEmulator, name: str) -> dict[str, Any]:
    deployment = emu.get("deployments", NAMESPACE, name)
    assert deployment is not None
    return dict(deployment["spec"]["template"])


def _without_version(template: dict[str, Any]) -> dict[str, Any]:
    out = {**template, "metadata": {**template["metadata"], "labels": dict(template["metadata"]["labels"])}}
    out["metadata"]["labels"].pop("deploy-orchestrator/version")
    out["spec"] = {**template["spec"], "containers": [{**c, "image": "-"} for c in template["spec"]["containers"]]}
    return out


def test_replaces_never_send_back_what_the_server_owns(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    platform.start("v2", "registry.example/shop:v2")
    platform.route({"v2": 100})

    replaces = [(path, body) for method, path, body in emu.writes if method == "PUT"]
    assert replaces
    for path, body in replaces:
        assert "status" not in body, path
        assert "managedFields" not in body["metadata"], path
        assert body["metadata"]["resourceVersion"], path  # optimistic concurrency still applies


def test_a_release_copies_the_live_template_with_every_server_default(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    live = _template(emu, APP)
    assert live["spec"]["dnsPolicy"] == "ClusterFirst"  # the emulator filled it, as a server does

    make_platform().start("v2", "registry.example/shop:v2")

    release = _template(emu, "shop-v2")
    assert release["spec"]["containers"][0]["image"] == "registry.example/shop:v2"
    assert _without_version(release) == _without_version(live)


def test_a_second_start_of_the_same_release_writes_nothing(emu: K8sEmulator, make_platform: MakePlatform) -> None:
    platform = make_platform()
    platform.start("v2", "registry.example/shop:v2")
    writes = len(emu.writes)

    platform.start("v2", "registry.example/shop:v2")

    assert emu.writes[writes:] == []


def test_there_and_back_leaves_the_users_template_exactly_as_it_was(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    platform = make_platform()
    before = _template(emu, APP)

    platform.start_sized("v2", "registry.example/shop:v2", 25)
    platform.route({"v1": 75, "v2": 25})
    platform.route({"v2": 100})
    assert _template(emu, "shop-v2")["spec"]["containers"][0]["image"] == "registry.example/shop:v2"
    platform.rollback(Release("v1"))

    assert _template(emu, APP) == before, "every release is its own Deployment; the user's is only scaled"


def test_a_version_no_label_can_hold_is_refused_before_anything_is_written(
    emu: K8sEmulator, make_platform: MakePlatform
) -> None:
    """Config admits 64-character versions and ones ending in '.', '-' or '_'; a label value does not."""
    for version, weight in (("v2-", 100), ("v" + "2" * 63, 25)):
        with pytest.raises(DeployError, match=r"cannot be the Kubernetes label deploy-orchestrator/version"):
            make_platform().start_sized(version, "registry.example/shop:v2", weight)
    assert emu.writes == []
