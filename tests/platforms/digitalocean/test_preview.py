"""Per-PR preview apps: deterministic names, production's spec minus domains and alerts."""

from __future__ import annotations

import re

import pytest
import requests

from orchestrator.platforms.digitalocean.preview_spec import legacy_preview_name, preview_name, preview_spec
from orchestrator.preview import deploy_preview
from tests.peers.do_simulator import DoSimulator

from .conftest import MakePreview

APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")


@pytest.mark.parametrize(
    ("repo", "pr", "name"),
    [
        # app_action's own expectations (utils/preview_test.go), so its delete finds our previews.
        ("foo/bar", 3, "foo-bar-3-merge-adb46530"),
        ("thisisanextremelylongrepohostname/bar", 3, "thisisanextremelylongre-92da974b"),
        ("foo/thisisanextremelylongreponame", 3, "foo-thisisanextremelylo-67dbc40d"),
        ("foo/my.domain.com", 3, "foo-my-domain-com-3-mer-b5e0d686"),
        ("Acme/Shop", 7, "acme-shop-7-merge-1b740c92"),
    ],
)
def test_preview_names_are_app_actions(repo: str, pr: int, name: str) -> None:
    assert preview_name(repo, pr) == name
    assert len(name) <= 32 and APP_NAME.match(name)


def test_preview_names_are_deterministic_and_distinct() -> None:
    assert preview_name("Acme/Shop", 42) == preview_name("acme/shop", 42)
    assert preview_name("acme/shop", 43) != preview_name("acme/shop", 42)
    long_a = preview_name("a-very-long-organisation-name/an-even-longer-repository-name-a", 12345)
    long_b = preview_name("a-very-long-organisation-name/an-even-longer-repository-name-b", 12345)
    assert long_a != long_b and len(long_a) == 32
    assert legacy_preview_name("acme/shop", 7) == "acme-shop-7-c8dbabf8", "the name before issue 15"
    with pytest.raises(ValueError):
        preview_name("acme/shop", 0)


def test_preview_spec_drops_domains_alerts_and_deploy_on_push() -> None:
    production = {
        "name": "shop",
        "domains": [{"domain": "shop.example.com", "type": "PRIMARY"}],
        "alerts": [{"rule": "DEPLOYMENT_FAILED"}],
        "services": [
            {
                "name": "web",
                "alerts": [{"rule": "CPU_UTILIZATION"}],
                "image": {"repository": "shop", "deploy_on_push": {"enabled": True}},
            }
        ],
    }
    spec = preview_spec(production, "acme-shop-42-1a2b3c4d")
    assert spec == {
        "name": "acme-shop-42-1a2b3c4d",
        "services": [{"name": "web", "image": {"repository": "shop"}}],
    }
    assert production["domains"], "production's spec is not modified"


def test_create_then_delete_a_preview(do_sim: DoSimulator, do_app: str, make_preview: MakePreview) -> None:
    production_id = do_sim.seed_app(
        "shop-prod",
        extra={
            "domains": [{"domain": "shop.example.com", "type": "PRIMARY"}],
            "alerts": [{"rule": "DEPLOYMENT_FAILED"}],
        },
    )
    platform = make_preview(42, "acme/shop", app_id=production_id)
    assert platform.live() is None and platform.releases() == [], "no preview app yet"

    release = deploy_preview(platform, "pr42-abc1234", "ghcr.io/acme/shop:pr-42")

    name = preview_name("acme/shop", 42)
    preview_id = do_sim.find_app(name)
    assert preview_id is not None and release.url
    assert requests.get(f"{release.url}/version", timeout=5).text == "pr42-abc1234"
    spec = do_sim.app_json(preview_id)["spec"]
    assert "domains" not in spec and "alerts" not in spec
    assert spec["services"][0]["image"] == {
        "registry_type": "GHCR",
        "registry": "acme",
        "repository": "shop",
        "tag": "pr-42",
    }
    assert do_sim.app_json(production_id)["spec"]["services"][0]["image"]["tag"] == "v1", "production untouched"

    again = deploy_preview(platform, "pr42-abc1234", "ghcr.io/acme/shop:pr-42")
    assert again.url == release.url and do_sim.count("POST", "/v2/apps") == 1 and do_sim.count("PUT") == 0

    updated = deploy_preview(platform, "pr42-def5678", "ghcr.io/acme/shop:pr-42b")
    assert requests.get(f"{updated.url}/version", timeout=5).text == "pr42-def5678"
    assert do_sim.count("PUT") == 1

    assert platform.remove() is True
    assert do_sim.find_app(name) is None
    assert platform.remove() is False, "already gone is fine"
    assert do_sim.find_app("shop-prod") == production_id


def test_teardown_also_finds_a_preview_named_before_issue_15(do_sim: DoSimulator, make_preview: MakePreview) -> None:
    legacy = do_sim.seed_app(legacy_preview_name("acme/shop", 7))
    platform = make_preview(7, "acme/shop")
    assert platform.remove() is True
    assert legacy not in do_sim.apps
    assert platform.remove() is False
