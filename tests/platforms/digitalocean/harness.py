"""DigitalOcean for the conformance suite: the App Platform simulator driven by real pydo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.peers.do_simulator import DoSimulator
from tests.platforms.harness import Harness, quick
from tests.workspace import base_config


def document(app_id: str = "app-1") -> dict[str, Any]:
    config = quick(base_config())
    config["deployment_config"] = {"strategy": "blue_green", "platform": "digitalocean", "do_app_id": app_id}
    return config


def build(tmp_path: Path) -> Harness:
    sim = DoSimulator()
    app_id = sim.seed_app("shop", version="v1")
    env = {
        "GITHUB_WORKSPACE": str(tmp_path),
        "DIGITALOCEAN_TOKEN": sim.token,
        "DIGITALOCEAN_API_URL": sim.url,
        "DIGITALOCEAN_CA_BUNDLE": sim.ca_bundle,
    }

    def close() -> None:
        sim.close()
        assert sim.violations == [], "\n".join(sim.violations)

    return Harness(
        "digitalocean",
        document(app_id),
        tmp_path,
        env,
        make_unhealthy=lambda version: sim.set_health(version, False),
        answered=lambda r: r.text,
        image=lambda version: f"registry.digitalocean.com/acme/shop:{version}",
        closers=[close],
    )
