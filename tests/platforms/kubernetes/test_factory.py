"""Building the adapter from the config: where the kubeconfig comes from, and what goes wrong clearly."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import trustme
import yaml

from orchestrator.contract import DeployConfig
from orchestrator.errors import ConfigError, DeployError
from orchestrator.platforms import registry
from orchestrator.platforms.base import Platform
from orchestrator.platforms.kubernetes.adapter import KubernetesPlatform
from orchestrator.platforms.registry import PRODUCTION, PlatformContext
from tests.peers.k8s_emulator import K8sEmulator

from .conftest import KUBECONFIG_VAR, deploy_config, versions_seen


def factory(config: DeployConfig, context: PlatformContext) -> Platform:
    return registry.descriptor("kubernetes").create(config, context, PRODUCTION)


def _close(platform: Platform) -> None:
    platform.cluster.proxy.close()  # type: ignore[attr-defined]


def test_the_kubernetes_platform_is_found_by_the_registry() -> None:
    from orchestrator.platforms.kubernetes.descriptor import DESCRIPTOR

    assert registry.descriptors()["kubernetes"] is DESCRIPTOR


def test_kubeconfig_content_in_the_env_var_reaches_the_cluster(emu: K8sEmulator) -> None:
    platform = factory(deploy_config(), PlatformContext(workspace=".", env={KUBECONFIG_VAR: emu.kubeconfig()}))
    try:
        assert isinstance(platform, KubernetesPlatform)
        assert versions_seen(platform.live_url(), 2) == {"v1": 2}
    finally:
        _close(platform)


def test_a_kubeconfig_path_in_the_env_var_works_too(emu: K8sEmulator, tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(emu.kubeconfig())
    platform = factory(deploy_config("rolling"), PlatformContext(workspace=".", env={KUBECONFIG_VAR: str(path)}))
    try:
        assert isinstance(platform, KubernetesPlatform), "one adapter, whatever the strategy"
        assert platform.live() is not None
    finally:
        _close(platform)


def test_a_missing_kubeconfig_env_var_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as error:
        factory(deploy_config(), PlatformContext(workspace=".", env={}))
    assert error.value.problems == (
        "credentials.k8s_kubeconfig_env_var: the environment variable KUBECONFIG_CONTENT is not set or empty and "
        "this is not running inside a cluster; put the kubeconfig (its content or its path) in KUBECONFIG_CONTENT, "
        "e.g. `env: {KUBECONFIG_CONTENT: ${{ secrets.KUBECONFIG }}}`",
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/nowhere/kubeconfig", "KUBECONFIG_CONTENT holds neither kubeconfig YAML nor the path of an existing file"),
        ("apiVersion: v1\nclusters: [\n", "KUBECONFIG_CONTENT does not hold valid kubeconfig YAML at line"),
        ("apiVersion: v1\nkind: Pod\n", "KUBECONFIG_CONTENT holds YAML that is not a kubeconfig (no `clusters`)"),
    ],
)
def test_an_unusable_kubeconfig_is_a_config_error(value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=r"credentials\.k8s_kubeconfig_env_var") as error:
        factory(deploy_config(), PlatformContext(workspace=".", env={KUBECONFIG_VAR: value}))
    assert expected in str(error.value)


def test_missing_namespace_and_deployment_are_named() -> None:
    bare = {"strategy": "blue_green", "platform": "kubernetes"}
    problems = list(registry.descriptor("kubernetes").config_problems({"deployment_config": bare}, Path(".")))
    assert [p.split(":")[0] for p in problems] == [
        "deployment_config.k8s_namespace",
        "deployment_config.k8s_deployment",
    ]


def test_a_server_certificate_from_another_ca_is_refused_without_retrying(emu: K8sEmulator) -> None:
    document = yaml.safe_load(emu.kubeconfig())
    other_ca = trustme.CA().cert_pem.bytes()
    document["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(other_ca).decode()
    env = {KUBECONFIG_VAR: yaml.safe_dump(document)}
    platform = factory(deploy_config(), PlatformContext(workspace=".", env=env))
    try:
        with pytest.raises(DeployError, match="certificate-authority in the kubeconfig from \\$KUBECONFIG_CONTENT"):
            platform.live()
    finally:
        _close(platform)
    assert emu.calls == [], "the TLS handshake failed before any request"
