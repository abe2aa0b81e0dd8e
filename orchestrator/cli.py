"""The command line and the Action's entry: read inputs, run the pipeline, map errors to exit codes.

Inside GitHub Actions the inputs arrive as `INPUT_<NAME>` with the hyphens kept
(`INPUT_VALIDATION-RUN-ID`); on a laptop the same names are flags (`--validation-run-id`).
The only broad `except` of the program lives here.

Exit codes: 0 success (or nothing to do) · 1 deploy failed or rolled back · 2 invalid input or
config, nothing touched · 3 refused by a gate, nothing touched.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator import config as config_module
from orchestrator import report
from orchestrator.console_logging import log_to_stderr
from orchestrator.contract import Request, Result
from orchestrator.errors import ConfigError
from orchestrator.platforms.base import REGISTRY, Platform, PlatformContext
from orchestrator.redaction import redact, register
from orchestrator.runlog import RunLog

__all__ = ["Execution", "build_platform", "execute", "main", "raw_inputs", "run"]

log = logging.getLogger("orchestrator")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "demo":
        from orchestrator.demo.walkthrough import run_demo

        return run_demo(args[1:], execute)
    if args and args[0] == "local":
        return _local_command(args[1:])
    if args and args[0] == "digests":
        from orchestrator.digests_command import run_digests

        return run_digests(args[1:])
    if args and args[0] == "run":
        args = args[1:]
    return run(args, os.environ)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deploy-orchestrator",
        description="Gate, migrate, deploy, verify and roll back. "
        "Commands: run (default), demo, digests, local status|stop.",
    )
    for name, help_text in config_module.INPUTS.items():
        parser.add_argument(f"--{name}", dest=name.replace("-", "_"), help=help_text)
    return parser


def raw_inputs(args: Sequence[str], env: Mapping[str, str]) -> dict[str, str]:
    """Action inputs from `INPUT_*`, overridden by any flag given on the command line."""
    parsed = vars(_parser().parse_args(list(args)))
    raw: dict[str, str] = {}
    for name in config_module.INPUTS:
        from_env = env.get(f"INPUT_{name.upper()}", "")
        from_flag = parsed.get(name.replace("-", "_"))
        value = from_flag if from_flag is not None else from_env
        if value:
            raw[name] = value
    return raw


@dataclass(frozen=True, slots=True)
class Execution:
    exit_code: int
    result: Result | None
    written: Mapping[str, Path]


def run(args: Sequence[str], env: Mapping[str, str]) -> int:
    log_to_stderr()
    execution = execute(raw_inputs(args, env), env)
    if execution.result is not None and env.get("GITHUB_ACTIONS") != "true":
        print(redact(json.dumps(execution.result.to_dict(), indent=2, sort_keys=True)))
        print(f"summary: {execution.written['summary']}\nresult:  {execution.written['result']}", file=sys.stderr)
    return execution.exit_code


def execute(raw: Mapping[str, str], env: Mapping[str, str]) -> Execution:
    """Validate, run the pipeline, write the outputs. Returns the exit code and what was written."""
    in_actions = env.get("GITHUB_ACTIONS") == "true"
    if raw.get("github-token"):
        register(raw["github-token"])
    try:
        request = config_module.load_request(raw, env)
        for name in request.config.secret_env_vars():
            if env.get(name):
                register(env[name])
        _require_credentials(request, env)
        platform = build_platform(request, env)
    except ConfigError as exc:
        _annotate("error", "invalid configuration", str(exc), in_actions)
        print(redact(str(exc)), file=sys.stderr)
        _write_bare_outputs(env, "failed")
        _write_config_error_summary(env, str(exc))
        return Execution(exc.exit_code, None, {})
    try:
        from orchestrator.pipeline import Pipeline

        result = Pipeline(request, platform, env, RunLog()).run()
    except Exception:  # the one broad catch: any surprise is a failed deploy with its traceback logged
        log.error("unexpected error:\n%s", redact(traceback.format_exc()))
        _write_bare_outputs(env, "failed")
        return Execution(1, None, {})
    written = report.write_outputs(result, request.inputs.workspace, env)
    if result.error:
        _annotate("error", f"deploy {result.status}", result.error, in_actions)
    return Execution(result.exit_code, result, written)


def _require_credentials(request: Request, env: Mapping[str, str]) -> None:
    """Secrets the run cannot do without, checked before anything is touched (exit 2)."""
    var = request.config.credentials.db_connection_env_var
    if request.config.artifacts.migrations and request.inputs.mode != "preview-teardown" and not env.get(var):
        raise ConfigError(
            f"credentials.db_connection_env_var: migrations are listed but ${var} is not set; "
            "pass the database DSN in that environment variable"
        )


def build_platform(request: Request, env: Mapping[str, str]) -> Platform:
    """Pick the platform adapter. A platform this build lacks is a config error naming the others."""
    _load_adapters()
    name = request.config.deployment.platform
    factory = REGISTRY.get(name)
    if factory is None:
        available = ", ".join(sorted(REGISTRY)) or "none"
        raise ConfigError(
            f"deployment_config.platform: {name} is not available in this version of deploy-orchestrator; "
            f"use one of {available}"
        )
    return factory(request.config, PlatformContext(workspace=str(request.inputs.workspace), env=env))


def _load_adapters() -> None:
    """Import the adapters so they register themselves; a broken optional one must not hide the others."""
    import importlib

    adapters = ("local", "digitalocean", "kubernetes")
    for module in (f"orchestrator.platforms.{name}" for name in adapters):
        try:
            importlib.import_module(module)
        except ImportError as exc:  # pragma: no cover - only when an optional SDK is missing
            log.warning("platform adapter %s unavailable: %s", module, exc)


def _local_command(args: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="deploy-orchestrator local", description="The local platform's supervisor.")
    parser.add_argument("action", choices=["status", "stop"])
    parser.add_argument("--config", default=config_module.DEFAULT_CONFIG)
    parsed = parser.parse_args(list(args))
    log_to_stderr()
    env = os.environ
    workspace = Path(env.get("GITHUB_WORKSPACE") or ".").resolve()
    try:
        document = config_module.read_config_file(workspace / parsed.config, shown_as=parsed.config)
        cfg = config_module.parse_config(document, workspace)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if cfg.deployment.local is None:
        print("deployment_config.local: this config has no local platform block", file=sys.stderr)
        return 2
    from orchestrator.platforms.local import supervisor_status, supervisor_stop

    if parsed.action == "status":
        print(json.dumps(supervisor_status(cfg.deployment.local, workspace), indent=2, sort_keys=True))
    else:
        supervisor_stop(cfg.deployment.local, workspace)
        print("stopped")
    return 0


def _annotate(level: str, title: str, message: str, in_actions: bool) -> None:
    if not in_actions:
        return
    escaped = redact(message).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    print(f"::{level} title={title}::{escaped}", flush=True)


def _write_config_error_summary(env: Mapping[str, str], message: str) -> None:
    """A refused config still tells the reader of the run page what to fix, every problem on its own line."""
    target = env.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    fence = "~~~~"
    text = (
        "## deploy-orchestrator: invalid configuration\n\nNothing was touched. Fix these and run again:\n\n"
        f"{fence}\n{redact(message).replace(fence, '~~~')}\n{fence}\n"
    )
    with Path(target).open("a", encoding="utf-8") as fh:
        fh.write(text)


def _write_bare_outputs(env: Mapping[str, str], status: str) -> None:
    target = env.get("GITHUB_OUTPUT")
    if target:
        with Path(target).open("a", encoding="utf-8") as fh:
            fh.write(f"status={status}\nrolled-back=false\n")
