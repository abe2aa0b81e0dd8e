"""The command line and the Action's entry: read inputs, run the pipeline, map errors to exit codes.

Inside GitHub Actions the inputs arrive as `INPUT_<NAME>` with the hyphens kept
(`INPUT_VALIDATION-RUN-ID`); on a laptop the same names are flags (`--validation-run-id`).
The only broad `except` of the program lives here.

Exit codes: 0 success (or nothing to do) · 1 deploy failed or rolled back · 2 invalid input or
config, nothing touched · 3 refused by a gate, nothing touched · 4 the deploy succeeded but its
outputs (GITHUB_OUTPUT, the step summary or the result file) could not be written.

Tokens are never flags: a flag's value shows in the process list to every user of the machine.
The GitHub token comes from the Action input (`INPUT_GITHUB-TOKEN`) or `GITHUB_TOKEN`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from orchestrator import config as config_module
from orchestrator import progress, report
from orchestrator.config_file import read_config_file, secret_variable_names
from orchestrator.console_logging import log_to_stderr
from orchestrator.contract import Request, Result
from orchestrator.errors import ConfigError
from orchestrator.platforms import registry
from orchestrator.platforms.base import Platform
from orchestrator.platforms.registry import PRODUCTION, PlatformContext, Target
from orchestrator.redaction import redact, register
from orchestrator.runlog import RunLog
from orchestrator.runner_files import WriteFailure, write_text

__all__ = ["EXIT_OUTPUTS_UNWRITTEN", "Execution", "build_platform", "execute", "main", "raw_inputs", "run", "target_of"]

log = logging.getLogger("orchestrator")


EXIT_OUTPUTS_UNWRITTEN = 4
"""The deploy succeeded, but the step's outputs are missing: later steps must not read them."""

ENV_ONLY_INPUTS = frozenset({"github-token"})
"""Action inputs that hold secrets: read from the environment only, never from a flag."""
TOKEN_VARIABLE = "GITHUB_TOKEN"


def main(argv: Sequence[str] | None = None) -> int:
    # Undecodable bytes in argv or a path must print as escapes, never as a UnicodeEncodeError.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "demo":
        from orchestrator.demo.walkthrough import run_demo

        return run_demo(args[1:], execute)
    if args and args[0] == "local":
        from orchestrator.local_command import run_local

        return run_local(args[1:])
    if args and args[0] == "digests":
        from orchestrator.digests_command import run_digests

        return run_digests(args[1:])
    if args and args[0] == "run":
        args = args[1:]
    elif args and args[0] == "recover":
        # The same run as `--mode recover`: settle runs that died, return to a verified good release.
        args = [*args[1:], "--mode", "recover"]
    return run(args, os.environ)


class _Parser(argparse.ArgumentParser):
    """argparse whose mistakes are ConfigErrors (exit 2, one line naming the flag), not SystemExit."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"command line: {message}; see --help")


_RUN_EPILOG = """\
workspace:
  GITHUB_WORKSPACE when set (inside Actions), otherwise the current directory. The config path and
  every path in the config are relative to it; results go to <workspace>/.deploy-orchestrator/.

environment:
  INPUT_<NAME>            each input as the Actions runner passes it (hyphens kept, e.g.
                          INPUT_VALIDATION-RUN-ID); a flag above overrides it
  INPUT_GITHUB-TOKEN      the github-token input, else GITHUB_TOKEN: tokens are read from the
                          environment only (--github-token is refused: argv is public)
  DATABASE_URL            the pipeline store / ledger DSN (named by credentials.db_connection_env_var)
  DIGITALOCEAN_TOKEN      App Platform token (named by credentials.do_api_token_env_var)
  DIGITALOCEAN_API_URL, DIGITALOCEAN_CA_BUNDLE   another App Platform endpoint and its CA (tests)
  AGENTBENCH_TOKEN        agentbench bearer token (named by agentbench_config.token_env_var)
  GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, GITHUB_EVENT_PATH, GITHUB_ACTIONS   set by the runner
  Any other variable the config names (webhook URLs, paging keys, kubeconfig) is read the same way
  and treated as a secret: masked in every log, output and summary.

exit codes:
  0  deployed (or nothing to do, or plan mode)
  1  the deploy failed or was rolled back
  2  invalid input or config: nothing was touched
  3  refused by a gate (validation, compliance, artifacts): nothing was touched
  4  deployed, but GITHUB_OUTPUT, the step summary or the result file could not be written
"""


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="deploy-orchestrator",
        description=(
            "Gate, migrate, deploy, verify and roll back. Commands: run (default), recover (settle runs that "
            "died and return to a verified good release), demo, digests, local status|stop."
        ),
        allow_abbrev=False,
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name, help_text in config_module.INPUTS.items():
        if name not in ENV_ONLY_INPUTS:
            parser.add_argument(f"--{name}", dest=name.replace("-", "_"), help=help_text)
    return parser


def raw_inputs(args: Sequence[str], env: Mapping[str, str]) -> dict[str, str]:
    """Action inputs from `INPUT_*`, overridden by any flag given on the command line.

    Raises ConfigError for a flag that is not an input, and for a secret passed as a flag."""
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in {f"--{name}" for name in ENV_ONLY_INPUTS}:
            raise ConfigError(
                f"{flag}: tokens are not taken on the command line, where every user of the machine can read "
                f"them in the process list; set {TOKEN_VARIABLE} in the environment instead "
                "(in a workflow: the github-token input)"
            )
    parsed = vars(_parser().parse_args(list(args)))
    raw: dict[str, str] = {}
    for name in config_module.INPUTS:
        from_env = env.get(f"INPUT_{name.upper()}", "")
        if name == "github-token":
            from_env = from_env or env.get(TOKEN_VARIABLE, "")
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
    write_failures: tuple[WriteFailure, ...] = ()
    result_json: str = ""


def run(args: Sequence[str], env: Mapping[str, str]) -> int:
    log_to_stderr()
    in_actions = env.get("GITHUB_ACTIONS") == "true"
    # Before the arguments are parsed: a refusal of them may quote any of them, secrets included.
    _register_named_secrets({"config": _config_argument(args, env)}, env)
    try:
        raw = raw_inputs(args, env)
    except ConfigError as exc:
        return _refused(exc, env, in_actions).exit_code
    execution = execute(raw, env)
    if execution.result is not None and not in_actions:
        # The text result-file got (serialising a result with thousands of files on record twice took seconds).
        print(execution.result_json or report.result_json(execution.result.to_dict()), end="")
        for name in ("summary", "result"):
            if name in execution.written:
                print(f"{name + ':':8} {execution.written[name]}", file=sys.stderr)
    return execution.exit_code


def execute(raw: Mapping[str, str], env: Mapping[str, str]) -> Execution:
    """Validate, run the pipeline, write the outputs. Returns the exit code and what was written.

    The exit code is the run's own; only a deploy that succeeded but could not write its outputs
    becomes EXIT_OUTPUTS_UNWRITTEN. Every unwritten channel is reported once."""
    in_actions = env.get("GITHUB_ACTIONS") == "true"
    if raw.get("github-token"):
        register(raw["github-token"])
    _register_named_secrets(raw, env)
    try:
        request = config_module.load_request(raw, env)
        for name in request.config.secret_env_vars():
            if env.get(name):
                register(env[name])
        _require_credentials(request, env)
    except ConfigError as exc:
        return _refused(exc, env, in_actions)
    try:
        platform = build_platform(request, env)
    except ConfigError as exc:
        return _refused(exc, env, in_actions)
    except Exception:  # an adapter failing to start up is a surprise like any other below
        log.error("unexpected error:\n%s", redact(traceback.format_exc()))
        return _bare(1, env, in_actions)
    try:
        from orchestrator.composition import compose
        from orchestrator.pipeline import Pipeline

        run_log = RunLog()
        with progress.bound(run_log), run_log.capturing():
            result = Pipeline(request, platform, compose(request, env, run_log)).run()
        written = report.write_outputs(result, request.inputs.workspace, env)
    except Exception:  # the one broad catch: any surprise is a failed deploy with its traceback logged
        log.error("unexpected error:\n%s", redact(traceback.format_exc()))
        return _bare(1, env, in_actions)
    if result.error:
        _annotate("error", _annotation_title(result), result.error, in_actions)
    exit_code = result.exit_code
    if written.failures:
        _report_unwritten(written.failures, result if exit_code == 0 else None, in_actions)
        if exit_code == 0:
            exit_code = EXIT_OUTPUTS_UNWRITTEN
    return Execution(exit_code, result, written.paths, written.failures, written.result_json)


def _refused(exc: ConfigError, env: Mapping[str, str], in_actions: bool) -> Execution:
    _annotate("error", "invalid configuration", str(exc), in_actions)
    print(redact(str(exc)), file=sys.stderr)
    unwritten = _write_config_error_summary(env, str(exc))
    return _bare(exc.exit_code, env, in_actions, () if unwritten is None else (unwritten,))


def _bare(
    exit_code: int, env: Mapping[str, str], in_actions: bool, unwritten: tuple[WriteFailure, ...] = ()
) -> Execution:
    failure = _write_bare_outputs(env, "failed")
    failures = unwritten + ((failure,) if failure is not None else ())
    if failures:
        _report_unwritten(failures, None, in_actions)
    return Execution(exit_code, None, {}, failures)


def _report_unwritten(failures: Sequence[WriteFailure], succeeded: Result | None, in_actions: bool) -> None:
    reasons = "; ".join(f.message() for f in failures)
    if succeeded is not None:
        where = f" at {succeeded.url}" if succeeded.url else ""
        message = (
            f"the deploy succeeded ({succeeded.deployment_details.new_version} is live{where}), but its outputs "
            f"are missing: {reasons}. The step fails (exit {EXIT_OUTPUTS_UNWRITTEN}) so that later steps do not "
            "read missing outputs; free the disk or fix the path, nothing needs redeploying"
        )
    else:
        message = f"outputs not written: {reasons}"
    if in_actions:
        _annotate("error", "outputs not written", message, in_actions)
    else:
        print(f"error: {redact(message)}", file=sys.stderr)


def _config_argument(args: Sequence[str], env: Mapping[str, str]) -> str:
    """The config path the arguments name, read leniently (they are not validated yet)."""
    for index, arg in enumerate(args):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and index + 1 < len(args):
            return args[index + 1]
    return env.get("INPUT_CONFIG") or config_module.DEFAULT_CONFIG


def _register_named_secrets(raw: Mapping[str, str], env: Mapping[str, str]) -> None:
    """Register the secrets the config names before it is validated: any error may quote them."""
    workspace = Path(env.get("GITHUB_WORKSPACE") or ".")
    try:
        document = read_config_file(workspace / (raw.get("config") or config_module.DEFAULT_CONFIG))
    except (ConfigError, OSError, ValueError):
        return  # load_request reports why; a file that cannot be read names no secrets
    for name in sorted(secret_variable_names(document)):
        if env.get(name):
            register(env[name])


def _annotation_title(result: Result) -> str:
    """What happened, in the words a reader scans the run page for."""
    if result.exit_code == 3:
        return "refused by gate"
    if result.status == "rolled_back":
        return "rolled back"
    return "deploy failed"


def _require_credentials(request: Request, env: Mapping[str, str]) -> None:
    """Secrets the run cannot do without, checked before anything is touched (exit 2)."""
    var = request.config.credentials.db_connection_env_var
    if (
        request.config.artifacts.migrations
        and request.inputs.mode not in ("preview-teardown", "delete")
        and not env.get(var)
    ):
        raise ConfigError(
            f"credentials.db_connection_env_var: migrations are listed but ${var} is not set; "
            "pass the database DSN in that environment variable"
        )


def build_platform(request: Request, env: Mapping[str, str], target: Target | None = None) -> Platform:
    """The platform adapter for `target` (default: the run's own, see `target_of`). Only the configured
    platform's SDK is imported. Raises ConfigError (a platform this build lacks, a missing credential)."""
    described = registry.descriptor(request.config.deployment.platform)
    context = PlatformContext(workspace=str(request.inputs.workspace), env=env)
    return described.create(request.config, context, target or target_of(request, env))


def target_of(request: Request, env: Mapping[str, str]) -> Target:
    """Production, or in preview modes the pull request's target. Raises ConfigError."""
    inputs = request.inputs
    if inputs.mode not in ("preview", "preview-teardown"):
        return PRODUCTION
    repository = inputs.repository or env.get("GITHUB_REPOSITORY")
    if inputs.pr_number is None or not repository:
        raise ConfigError(
            "GITHUB_REPOSITORY: previews are named after the repository; set it to owner/name"
            if inputs.pr_number is not None
            else "pr-number: required in preview modes (run on pull_request events or pass --pr-number)"
        )
    return Target.preview(inputs.pr_number, repository)


def _annotate(level: str, title: str, message: str, in_actions: bool) -> None:
    if not in_actions:
        return
    escaped = redact(message).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    print(f"::{level} title={title}::{escaped}", flush=True)


def _write_config_error_summary(env: Mapping[str, str], message: str) -> WriteFailure | None:
    """A refused config still tells the reader of the run page what to fix, every problem on its own line."""
    target = env.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    fence = "~~~~"
    text = (
        "## deploy-orchestrator: invalid configuration\n\nNothing was touched. Fix these and run again:\n\n"
        f"{fence}\n{redact(message).replace(fence, '~~~')}\n{fence}\n"
    )
    return write_text("GITHUB_STEP_SUMMARY", Path(target), text, append=True)


def _write_bare_outputs(env: Mapping[str, str], status: str) -> WriteFailure | None:
    target = env.get("GITHUB_OUTPUT")
    if not target:
        return None
    return write_text("GITHUB_OUTPUT", Path(target), f"status={status}\nrolled-back=false\n", append=True)
