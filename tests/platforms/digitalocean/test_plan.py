"""Pure plans: image references, the spec edit, health-check limits."""

from __future__ import annotations

import pytest

from orchestrator.contract import HealthCheckConfig
from orchestrator.errors import ConfigError
from orchestrator.platforms.digitalocean.image import parse_image
from orchestrator.platforms.digitalocean.spec import health_check_block, version_of, with_release

DIGEST = "sha256:" + "0f" * 32


@pytest.mark.parametrize(
    ("ref", "block"),
    [
        ("registry.digitalocean.com/acme/shop:1.2", {"registry_type": "DOCR", "repository": "shop", "tag": "1.2"}),
        (
            f"registry.digitalocean.com/acme/shop@{DIGEST}",
            {"registry_type": "DOCR", "repository": "shop", "digest": DIGEST},
        ),
        (
            f"ghcr.io/acme/shop:v1@{DIGEST}",
            {"registry_type": "GHCR", "registry": "acme", "repository": "shop", "digest": DIGEST},
        ),
        (
            "ghcr.io/acme/team/shop",
            {"registry_type": "GHCR", "registry": "acme", "repository": "team/shop", "tag": "latest"},
        ),
        ("nginx", {"registry_type": "DOCKER_HUB", "registry": "library", "repository": "nginx", "tag": "latest"}),
        ("acme/shop:2", {"registry_type": "DOCKER_HUB", "registry": "acme", "repository": "shop", "tag": "2"}),
        (
            "docker.io/acme/shop:2",
            {"registry_type": "DOCKER_HUB", "registry": "acme", "repository": "shop", "tag": "2"},
        ),
    ],
)
def test_image_references_become_app_platform_image_blocks(ref: str, block: dict[str, str]) -> None:
    assert parse_image(ref).to_spec() == block


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("quay.io/acme/shop:1", "pulls only from registry.digitalocean.com"),
        ("ghcr.io/acme/shop@sha256:abc", "digest should be sha256:<64"),
        ("registry.digitalocean.com/shop:1", "expected registry.digitalocean.com/<registry>/<repository>"),
        ("acme/Shop:1", "repository should be lowercase"),
    ],
)
def test_unusable_image_references_are_config_errors(ref: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_image(ref)


def test_health_check_is_clamped_to_app_platform_limits_and_keeps_other_fields() -> None:
    health = HealthCheckConfig(
        endpoint="https://shop.example.com/healthz?deep=1",
        expected_status=204,
        timeout_seconds=500,
        retries=99,
        interval_seconds=0.2,
    )
    block = health_check_block(health, {"port": 9090, "initial_delay_seconds": 20})
    assert block == {
        "port": 9090,
        "initial_delay_seconds": 20,
        "http_path": "/healthz",
        "timeout_seconds": 120,
        "period_seconds": 1,
        "failure_threshold": 50,
        "success_threshold": 1,
    }


def test_with_release_replaces_the_source_and_relabels_without_touching_the_input() -> None:
    spec = {
        "name": "shop",
        "services": [
            {
                "name": "web",
                "github": {"repo": "acme/shop", "branch": "main"},
                "dockerfile_path": "Dockerfile",
                "envs": [{"key": "DEPLOY_ORCHESTRATOR_VERSION", "value": "v1"}, {"key": "MODE", "value": "prod"}],
            },
        ],
    }
    new = with_release(spec, "web", "v2", parse_image("ghcr.io/acme/shop:v2"), None)
    service = new["services"][0]
    assert "github" not in service and "dockerfile_path" not in service
    assert service["image"]["tag"] == "v2" and "health_check" not in service
    assert [e["key"] for e in service["envs"]] == ["MODE", "DEPLOY_ORCHESTRATOR_VERSION"]
    assert version_of(new, "web") == "v2" and version_of(spec, "web") == "v1"
    assert version_of(new, None) == "v2" and version_of(new, "api") is None
