"""Build a throwaway workspace holding a config file, for tests that drive the real CLI or pipeline."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from orchestrator.demo.app import release_command


def base_config(listen_port: int = 18080) -> dict[str, Any]:
    """A complete, valid config for the local platform running the demo app."""
    return {
        "deployment_config": {
            "strategy": "blue_green",
            "platform": "local",
            "local": {
                "command": release_command(),
                "listen": f"127.0.0.1:{listen_port}",
                "state_dir": ".deploy-orchestrator/local",
                "drain_seconds": 1,
                "startup_timeout_seconds": 20,
            },
        },
        "artifacts": {"odoo_modules": [], "migrations": []},
        "health_check": {
            "endpoint": "/health",
            "expected_status": 200,
            "timeout_seconds": 2,
            "retries": 3,
            "interval_seconds": 0.2,
        },
        "rollback_config": {
            "auto_rollback_on_failure": True,
            "keep_previous_versions": 2,
            "max_rollback_duration_seconds": 30,
        },
        "agentbench_config": {
            "url": "http://127.0.0.1:9/agentbench",
            "token_env_var": "AGENTBENCH_TOKEN",
            "emit_dpo_on_failure": True,
        },
        "credentials": {"do_api_token_env_var": "DIGITALOCEAN_TOKEN", "db_connection_env_var": "DATABASE_URL"},
    }


def write_config(workspace: Path, config: dict[str, Any], name: str = "deploy.json") -> Path:
    path = workspace / name
    path.write_text(json.dumps(copy.deepcopy(config), indent=2))
    return path
