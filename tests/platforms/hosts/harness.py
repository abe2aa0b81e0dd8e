"""The hosts platform for the conformance suite: two SSH hosts (network namespaces) behind a front."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.peers import postgres, ssh_hosts
from tests.platforms.harness import Harness, image, quick
from tests.platforms.hosts.workspace import hosts_document, hosts_env
from tests.workspace import base_config


def document() -> dict[str, Any]:
    config = quick(base_config())
    config["deployment_config"] = {
        "strategy": "blue_green",
        "platform": "hosts",
        "local": {"command": ["python3", "app.py"], "listen": "0.0.0.0:8080"},
        "hosts": {"hosts": [{"address": "10.0.0.2"}], "public_url": "https://shop.example"},
    }
    config["credentials"]["ssh_private_key_env_var"] = "DEPLOY_SSH_KEY"
    return config


def build(tmp_path: Path) -> Harness:
    fleet = ssh_hosts.start_fleet(2)
    try:
        marks = tmp_path / "unhealthy"
        marks.mkdir()
        port = postgres.free_port()
        front = fleet.start_front(port)
        config = hosts_document(tmp_path, fleet, port, front.url)
        # The front marks a host up after its first good check: give the checks through it time for that.
        config["health_check"].update(retries=20, interval_seconds=0.1, timeout_seconds=3)
        local = config["deployment_config"]["local"]
        # A release whose mark file exists answers /health with 503 (the hosts share this filesystem).
        local["command"] = ["sh", "-c", 'test -e "$0" && export DEMO_UNHEALTHY=1; exec "$@"', f"{marks}/{{version}}"]
        local["command"] += ["/usr/bin/python3", "app.py", "--port", "{port}", "--version", "{version}"]
        harness = Harness(
            "hosts",
            config,
            tmp_path,
            hosts_env(fleet, tmp_path),
            make_unhealthy=lambda version: (marks / version).touch(),
            answered=lambda r: str(r.json()["version"]),
            image=image,
            closers=[fleet.close],
        )
        harness.deploy(harness.platform(), "v1")
    except BaseException:
        fleet.close()
        raise
    return harness
