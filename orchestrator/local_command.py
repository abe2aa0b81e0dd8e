"""`deploy-orchestrator local status|stop`: the local platform's supervisor, outside any run.

The one place besides the demo that names a platform package directly: these verbs belong to the
local platform alone, and must work even when the rest of the config is broken or moved.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from orchestrator.config import DEFAULT_CONFIG, read_config_file
from orchestrator.console_logging import log_to_stderr
from orchestrator.contract import LocalConfig
from orchestrator.errors import ConfigError

__all__ = ["run_local"]


def run_local(args: Sequence[str]) -> int:
    """`deploy-orchestrator local status|stop`: exit 0, or 2 when the state directory cannot be found."""
    parser = argparse.ArgumentParser(
        prog="deploy-orchestrator local",
        description="The local platform's supervisor. Reads only deployment_config.local's listen and "
        "state_dir from the config (the rest may be broken or moved: stop always works), or --state-dir.",
    )
    parser.add_argument("action", choices=["status", "stop"])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--state-dir", help="the supervisor's state directory, instead of reading the config")
    parsed = parser.parse_args(list(args))
    log_to_stderr()
    env = os.environ
    workspace = Path(env.get("GITHUB_WORKSPACE") or ".").resolve()
    try:
        local = _local_block(workspace, parsed.config, parsed.state_dir)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    from orchestrator.platforms.local import supervisor_status, supervisor_stop

    if parsed.action == "status":
        print(json.dumps(supervisor_status(local, workspace), indent=2, sort_keys=True))
    else:
        supervisor_stop(local, workspace)
        print("stopped")
    return 0


def _local_block(workspace: Path, config_path: str, state_dir: str | None) -> LocalConfig:
    """Just what `local status|stop` need: a bad artifact or a moved migrations folder elsewhere in the
    config must never keep `stop` from stopping the supervisor."""
    if state_dir is not None:
        return LocalConfig(command=(), state_dir=Path(state_dir))
    try:
        document = read_config_file(workspace / config_path, shown_as=config_path)
    except ConfigError as exc:
        raise ConfigError(f"{exc}\n(or pass --state-dir with the supervisor's state directory)") from exc
    block = ((document.get("deployment_config") or {}) if isinstance(document, dict) else {}).get("local")
    if not isinstance(block, dict):
        raise ConfigError(
            f"deployment_config.local: {config_path} has no local platform block; pass --state-dir instead"
        )
    listen, folder, command = block.get("listen"), block.get("state_dir"), block.get("command")
    defaults = LocalConfig(command=())
    return LocalConfig(
        command=tuple(str(c) for c in command) if isinstance(command, list) else (),
        listen=listen if isinstance(listen, str) else defaults.listen,
        state_dir=Path(folder) if isinstance(folder, str) else defaults.state_dir,
    )
