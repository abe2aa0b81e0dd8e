"""The simulator speaks DigitalOcean's API as its OpenAPI description says, and the check bites."""

from __future__ import annotations

import json

import pytest
import requests

from orchestrator.contract import Artifacts, Credentials, DeploymentConfig
from orchestrator.errors import ConfigError
from orchestrator.platforms import registry
from orchestrator.platforms.digitalocean.adapter import DigitalOceanPlatform
from orchestrator.platforms.digitalocean.descriptor import DESCRIPTOR
from orchestrator.platforms.registry import PRODUCTION, PlatformContext
from tests.peers import do_contract
from tests.peers.do_simulator import DoSimulator

pytestmark = pytest.mark.skipif(not do_contract.is_available(), reason="DigitalOcean OpenAPI description not present")


def test_sampled_responses_match_the_openapi_description(do_sim: DoSimulator, do_app: str) -> None:
    app = do_sim.app_json(do_app)
    deployment = do_sim.deployments(do_app)[0]
    path = f"/v2/apps/{do_app}"
    assert do_contract.check("GET", path, {}, b"", 200, json.dumps({"app": app}).encode()) == []
    assert (
        do_contract.check(
            "GET",
            f"{path}/deployments/{deployment['id']}",
            {},
            b"",
            200,
            json.dumps({"deployment": deployment}).encode(),
        )
        == []
    )
    verdict = {"valid": False, "error": {"code": "app_pinned", "message": "pinned"}}
    body = json.dumps({"deployment_id": deployment["id"], "skip_pin": False}).encode()
    assert do_contract.check("POST", f"{path}/rollback/validate", {}, body, 200, json.dumps(verdict).encode()) == []


def test_the_contract_check_rejects_wrong_shapes(do_app: str) -> None:
    path = f"/v2/apps/{do_app}/rollback/validate"
    body = json.dumps({"deployment_id": "d", "skip_pin": False}).encode()
    problems = do_contract.check("POST", path, {}, body, 200, json.dumps({"valid": "yes"}).encode())
    assert problems and "not of type 'boolean'" in problems[0]
    bad_request = json.dumps({"deployment_id": "d", "skip_pin": "no"}).encode()
    assert do_contract.check("POST", path, {}, bad_request, 200, json.dumps({"valid": True}).encode())


class _Cfg:
    """Only the parts of DeployConfig the factory reads."""

    def __init__(self, app_id: str) -> None:
        from tests.platforms.digitalocean.conftest import HEALTH

        self.deployment = DeploymentConfig(strategy="rolling", platform="digitalocean", do_app_id=app_id)
        self.health_check = HEALTH
        self.credentials = Credentials(do_api_token_env_var="DO_TOKEN", db_connection_env_var="DATABASE_URL")
        self.artifacts = Artifacts(odoo_modules=(), migrations=())


def test_the_factory_is_registered_and_reads_token_endpoint_and_ca_from_env(do_sim: DoSimulator, do_app: str) -> None:
    assert registry.descriptors()["digitalocean"] is DESCRIPTOR
    env = {"DO_TOKEN": do_sim.token, "DIGITALOCEAN_API_URL": do_sim.url, "DIGITALOCEAN_CA_BUNDLE": do_sim.ca_bundle}
    platform = DESCRIPTOR.create(_Cfg(do_app), PlatformContext(workspace=".", env=env), PRODUCTION)  # type: ignore[arg-type]
    assert isinstance(platform, DigitalOceanPlatform)
    assert platform.live_url().startswith("http://127.0.0.1:")

    with pytest.raises(ConfigError, match="the environment variable DO_TOKEN is not set or empty"):
        DESCRIPTOR.create(_Cfg(do_app), PlatformContext(workspace=".", env={}), PRODUCTION)  # type: ignore[arg-type]


def test_the_simulator_records_a_request_outside_the_description() -> None:
    """Exchanges are checked beside the answers; close() waits for every check to finish."""
    sim = DoSimulator()
    try:
        app_id = sim.seed_app("shop")
        answer = requests.post(
            f"{sim.url}/v2/apps/{app_id}/rollback/validate",
            json={"deployment_id": "d", "skip_pin": "no"},
            headers={"Authorization": f"Bearer {sim.token}"},
            verify=sim.ca_bundle,
            timeout=10,
        )
        assert answer.status_code == 200
    finally:
        sim.close()
    assert any("skip_pin" in v or "boolean" in v for v in sim.violations), sim.violations
