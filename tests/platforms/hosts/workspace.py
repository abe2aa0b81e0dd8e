"""A workspace deploying the demo app to SSH hosts: the app is in the release's files, run by the host's Python."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orchestrator.demo.app
from tests.peers.ssh_hosts import Fleet
from tests.workspace import base_config

KEY_VAR = "DEPLOY_SSH_KEY"
KNOWN_HOSTS_VAR = "DEPLOY_KNOWN_HOSTS"


def hosts_document(workspace: Path, fleet: Fleet, app_port: int, public_url: str) -> dict[str, Any]:
    """A config for `fleet` with the demo app (copied into `workspace/app`) listening on `app_port` on each host."""
    app = workspace / "app"
    app.mkdir(exist_ok=True)
    shutil.copy(orchestrator.demo.app.__file__, app / "app.py")
    document = base_config()
    document["health_check"].update(retries=3, interval_seconds=0.1, timeout_seconds=3)
    document["deployment_config"] = {
        "strategy": "blue_green",
        "platform": "hosts",
        "local": {
            "command": ["/usr/bin/python3", "app.py", "--port", "{port}", "--version", "{version}"],
            "listen": f"0.0.0.0:{app_port}",
            "source": "app",
            "drain_seconds": 1,
            "startup_timeout_seconds": 20,
        },
        "hosts": {
            "hosts": [{"address": h.address, "root": str(fleet.directory / f"{h.name}-root")} for h in fleet.hosts],
            "public_url": public_url,
            "connect_timeout_seconds": 5,
            "python": "/usr/bin/python3",
        },
    }
    document["credentials"].update(ssh_private_key_env_var=KEY_VAR, ssh_known_hosts_env_var=KNOWN_HOSTS_VAR)
    return document


def hosts_env(fleet: Fleet, workspace: Path) -> dict[str, str]:
    return {"GITHUB_WORKSPACE": str(workspace), KEY_VAR: fleet.client_key, KNOWN_HOSTS_VAR: fleet.known_hosts}
