"""Private images: App Platform's encrypted `registry_credentials` survive every deploy we make."""

from __future__ import annotations

import time
from typing import Any

from tests.peers.do_simulator import SEALED, DoSimulator

from .conftest import MakePlatform

PRIVATE = {
    "registry_type": "GHCR",
    "registry": "acme",
    "repository": "shop",
    "tag": "v1",
    "registry_credentials": "acme-bot:ghp_private-pull-token",
    "deploy_on_push": {"enabled": False},
}


def image_block(sim: DoSimulator, app_id: str) -> dict[str, Any]:
    block: dict[str, Any] = sim.app_json(app_id)["spec"]["services"][0]["image"]
    return block


def test_a_private_images_second_deploy_still_carries_its_credentials_exactly(
    do_sim: DoSimulator, make_platform: MakePlatform
) -> None:
    do_sim.private_repositories.add("shop")
    app_id = do_sim.seed_app("private-shop", version="v1", image=dict(PRIVATE))
    sealed = image_block(do_sim, app_id)["registry_credentials"]
    assert sealed.startswith(SEALED) and "ghp_" not in sealed, "App Platform keeps only the encrypted value"
    platform = make_platform(app_id=app_id)

    platform.start("v2", "ghcr.io/acme/shop@sha256:" + "12" * 32)
    platform.start("v3", "ghcr.io/acme/shop@sha256:" + "34" * 32)

    block = image_block(do_sim, app_id)
    assert block["registry_credentials"] == sealed
    assert block["deploy_on_push"] == {"enabled": False}
    assert block["digest"] == "sha256:" + "34" * 32 and "tag" not in block
    assert platform.live().version == "v3"  # type: ignore[union-attr]
    assert [d["phase"] for d in do_sim.deployments(app_id)] == ["ACTIVE", "SUPERSEDED", "SUPERSEDED"]


def test_the_simulator_refuses_to_pull_a_private_image_without_credentials(do_sim: DoSimulator) -> None:
    """The test above could not fail if a deploy without credentials still went live."""
    do_sim.private_repositories.add("shop")
    app_id = do_sim.seed_app("private-shop", version="v1", image=dict(PRIVATE))
    spec = do_sim.app_json(app_id)["spec"]
    del spec["services"][0]["image"]["registry_credentials"]
    status, _ = do_sim.handle("PUT", f"/v2/apps/{app_id}", {}, {"spec": spec})
    assert status == 200
    deadline = time.monotonic() + 10
    newest = do_sim.deployments(app_id)[0]
    while newest["phase"] not in ("ACTIVE", "ERROR") and time.monotonic() < deadline:
        time.sleep(0.02)
        newest = do_sim.deployments(app_id)[0]
    assert newest["phase"] == "ERROR"
    assert "pull access denied for shop" in newest["progress"]["steps"][1]["reason"]["message"]
