"""The local platform for the conformance suite: real release processes behind the supervisor's proxy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.peers import postgres
from tests.platforms.harness import PREVIEW, Harness, image, quick
from tests.platforms.local.conftest import kill_leftovers
from tests.workspace import base_config, write_config


def document() -> dict[str, Any]:
    return quick(base_config())


def build(tmp_path: Path) -> Harness:
    marks = tmp_path / "unhealthy"
    marks.mkdir()
    config = quick(base_config(postgres.free_port()))
    # A release whose mark file exists answers /health with 503 (the demo app's own switch).
    script = 'test -e "$0" && export DEMO_UNHEALTHY=1; exec "$@"'
    local = config["deployment_config"]["local"]
    local["command"] = ["sh", "-c", script, f"{marks}/{{version}}", *local["command"]]
    write_config(tmp_path, config)
    harness = Harness(
        "local",
        config,
        tmp_path,
        {"GITHUB_WORKSPACE": str(tmp_path)},
        make_unhealthy=lambda version: (marks / version).touch(),
        answered=lambda r: str(r.json()["version"]),
        image=image,
    )
    state = tmp_path / local["state_dir"]
    harness.closers.append(lambda: kill_leftovers(state))
    harness.closers.append(lambda: kill_leftovers(state / "previews" / PREVIEW.name))
    harness.deploy(harness.platform(), "v1")
    return harness
