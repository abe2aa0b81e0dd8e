"""Configs and environments for hosts found on DigitalOcean Droplets (the simulator's), for the droplet tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tests.peers.do_simulator import DoSimulator
from tests.workspace import base_config

KEY_VAR = "DEPLOY_SSH_KEY"
TOKEN_VAR = "DIGITALOCEAN_TOKEN"


def droplets_document(
    droplets: dict[str, Any], *, public_url: str = "https://shop.example", **hosts: Any
) -> dict[str, Any]:
    """A hosts config whose hosts are found by `droplets` (the `hosts.droplets` block)."""
    document = base_config()
    document["deployment_config"] = {
        "strategy": "blue_green",
        "platform": "hosts",
        "local": {"command": ["python3", "app.py", "--port", "{port}"], "listen": "0.0.0.0:8080"},
        "hosts": {"droplets": droplets, "public_url": public_url, **hosts},
    }
    document["credentials"]["ssh_private_key_env_var"] = KEY_VAR
    return document


def droplets_env(sim: DoSimulator, workspace: Path, key: str | None = None) -> dict[str, str]:
    """The run's environment: the simulator as the DigitalOcean API, an SSH key (a throwaway one by default)."""
    if key is None:
        key = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()
    return {
        "GITHUB_WORKSPACE": str(workspace),
        TOKEN_VAR: sim.token,
        "DIGITALOCEAN_API_URL": sim.url,
        "DIGITALOCEAN_CA_BUNDLE": sim.ca_bundle,
        KEY_VAR: key,
    }
