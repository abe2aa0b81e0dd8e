"""The registry: platforms describe themselves, strategies follow from capabilities, SDKs load lazily."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.config import load_request, parse_config
from orchestrator.errors import ConfigError
from orchestrator.platforms import base, registry
from orchestrator.platforms.registry import PRODUCTION, Target
from orchestrator.strategies.support import supported
from tests.workspace import base_config, write_config


def test_every_platform_package_is_found_with_its_capabilities() -> None:
    found = registry.descriptors()
    assert sorted(found) == ["digitalocean", "hosts", "kubernetes", "local"]
    assert found["local"].capabilities == {
        base.TrafficRouter,
        base.StickyRouter,
        base.TrafficMeter,
        base.Retirement,
        base.Previews,
        base.PinsArtifacts,
    }
    assert found["digitalocean"].capabilities == {
        base.NativeRollback,
        base.Previews,
        base.PinsArtifacts,
        base.DeletesApps,
    }
    assert found["kubernetes"].capabilities == {base.TrafficRouter, base.Retirement}
    assert found["hosts"].capabilities == {base.TrafficRouter, base.Retirement, base.PinsArtifacts}


def test_the_strategies_a_platform_runs_follow_from_its_capabilities() -> None:
    found = registry.descriptors()
    assert supported(found["local"].capabilities) == {"blue_green", "canary", "rolling"}
    assert supported(found["kubernetes"].capabilities) == {"blue_green", "canary", "rolling"}
    assert supported(found["digitalocean"].capabilities) == {"blue_green", "rolling"}
    assert supported(found["hosts"].capabilities) == {"blue_green", "canary", "rolling"}


def test_an_unknown_platform_names_the_ones_this_build_has() -> None:
    with pytest.raises(
        ConfigError, match=r"heroku is not available.*use one of digitalocean, hosts, kubernetes, local"
    ):
        registry.descriptor("heroku")


def test_lock_keys_name_the_target() -> None:
    local = registry.descriptor("local")
    config = parse_config(base_config(), Path.cwd())
    assert local.target_key(config.deployment, PRODUCTION) == "local/127.0.0.1:18080"
    assert local.target_key(config.deployment, Target.preview(7, "acme/shop")) == "local/127.0.0.1:18080/pr-7"


def test_preview_modes_on_a_platform_without_previews_are_a_config_error_naming_the_others(tmp_path: Path) -> None:
    config = base_config()
    config["deployment_config"] = {
        "strategy": "blue_green",
        "platform": "kubernetes",
        "k8s_namespace": "prod",
        "k8s_deployment": "shop",
    }
    write_config(tmp_path, config)
    env = {"GITHUB_WORKSPACE": str(tmp_path), "GITHUB_REPOSITORY": "acme/shop"}
    with pytest.raises(ConfigError) as error:
        load_request({"config": "deploy.json", "version": "v1", "mode": "preview", "pr-number": "7"}, env)
    assert error.value.problems == (
        "mode: kubernetes has no pull-request previews; run preview modes on a platform that has them "
        "(local, digitalocean)",
    )


_PROBE = """
import json, sys
from orchestrator.cli import build_platform
from orchestrator.config import load_request, parse_config
request = load_request({"config": "deploy.json", "version": "v1", "mode": "plan"}, {"GITHUB_WORKSPACE": sys.argv[1]})
platform = build_platform(request, {"GITHUB_WORKSPACE": sys.argv[1]})
print(json.dumps({"platform": platform.name, "sdks": sorted(m for m in ("pydo", "kubernetes") if m in sys.modules)}))
"""


def test_a_local_deploy_never_imports_the_cloud_sdks(tmp_path: Path) -> None:
    write_config(tmp_path, base_config())
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path)], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout) == {"platform": "local", "sdks": []}
