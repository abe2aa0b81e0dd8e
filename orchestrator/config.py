"""Raw inputs and the config file -> schema validation -> contract types. All validation lives here.

The JSON Schema in `schema/deploy-config.schema.json` is the one statement of what a valid
config is; this module turns its errors into `field.path: what is wrong; the fix` lines and adds
only the cross-field checks a schema cannot say (platform blocks, strategy/platform pairs, paths
that must stay inside the workspace). Every problem is collected before `ConfigError` is raised,
so one run shows every mistake.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, cast

from orchestrator.config_bounds import bound_problems
from orchestrator.config_build import build_config
from orchestrator.config_canary import canary_problems
from orchestrator.config_file import document_problems, read_config_file
from orchestrator.contract import (
    MODES,
    DeployConfig,
    Mode,
    Request,
    RunInputs,
)
from orchestrator.errors import ConfigError
from orchestrator.github_event import MAX_PR_NUMBER, read_event
from orchestrator.paths import outside_problem
from orchestrator.platforms import registry
from orchestrator.platforms.base import DeletesApps, Previews
from orchestrator.redaction import Secret
from orchestrator.safe_files import resolve_safely
from orchestrator.schema_errors import schema_problems
from orchestrator.strategies.support import unsupported_problem

__all__ = ["INPUTS", "SCHEMA_DIR", "load_request", "parse_config", "read_config_file", "schema"]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"
DEFAULT_CONFIG = ".github/deploy-orchestrator.yml"

INPUTS: dict[str, str] = {
    "config": "Path of the config file (YAML or JSON), relative to the workspace.",
    "mode": "deploy | plan | rollback | preview | preview-teardown | recover | delete.",
    "validation-run-id": "The ValidationAgent run that passed for these artifacts.",
    "version": "Label of the new release (default: the short commit SHA).",
    "image": "Container image of the new release (overrides artifacts.docker_image; pin by digest).",
    "rollback-to": "With mode rollback: the release to return to (default: the newest good release not live).",
    "pr-number": "Pull request number for preview modes (default: from the event payload).",
    "github-token": "Token for PR comments and GitHub Deployments (optional; never a flag: else $GITHUB_TOKEN).",
    "app-id": "With mode delete (platform digitalocean): the id of the App Platform app to delete.",
    "app-name": "With mode delete (platform digitalocean): the name of the app to delete (instead of app-id).",
    "ignore-not-found": "With mode delete: true to succeed when the app does not exist (default false: exit 2).",
}
"""The Action's inputs, in action.yml order. A test keeps action.yml and the CLI flags in step."""

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@cache
def schema(name: str = "deploy-config") -> dict[str, Any]:
    with (SCHEMA_DIR / f"{name}.schema.json").open(encoding="utf-8") as fh:
        return cast(dict[str, Any], json.load(fh))


# --- inputs ------------------------------------------------------------------------------------


def load_request(raw: Mapping[str, str], env: Mapping[str, str]) -> Request:
    """Validate the Action inputs (or CLI flags, same names) and the config file they point at."""
    problems: list[str] = []
    workspace = resolve_safely(Path(env.get("GITHUB_WORKSPACE") or "."), field="GITHUB_WORKSPACE")
    mode = (raw.get("mode") or "deploy").strip()
    if mode not in MODES:
        problems.append(f"mode: {mode!r} is not a mode; use one of {', '.join(MODES)}")
    config_rel = (raw.get("config") or DEFAULT_CONFIG).strip()
    config_path = _inside(workspace, config_rel, "config", problems)

    run_id = (raw.get("validation-run-id") or "").strip() or None
    if run_id is not None and not _ID.match(run_id):
        problems.append(
            "validation-run-id: should be 1-128 characters of letters, digits, '.', '_', ':' or '-' "
            "(the id the ValidationAgent printed)"
        )
    version = (raw.get("version") or "").strip() or (env.get("GITHUB_SHA") or "")[:7]
    if not version and mode in ("recover", "delete"):
        version = mode  # neither deploys a release of its own
    if not version:
        problems.append("version: missing; pass --version (the Action defaults it to the short commit SHA)")
    elif not _VERSION.match(version):
        problems.append("version: should be 1-64 characters of letters, digits, '.', '_' or '-', starting alphanumeric")
    image = (raw.get("image") or "").strip() or None
    if image is not None and any(c.isspace() for c in image):
        problems.append("image: must not contain whitespace")
    rollback_to = (raw.get("rollback-to") or "").strip() or None
    if rollback_to is not None and not _VERSION.match(rollback_to):
        problems.append("rollback-to: should be a release label such as a short SHA")
    pr_number = _pr_number(raw.get("pr-number"), env, problems)
    app_id, app_name, ignore_not_found = _delete_inputs(raw, mode, problems)
    token_value = (raw.get("github-token") or "").strip()
    token = Secret(token_value, "github-token") if token_value else None

    config: DeployConfig | None = None
    if config_path is not None:
        try:
            document = read_config_file(config_path, shown_as=config_rel)
        except ConfigError as exc:
            problems.extend(exc.problems)
        else:
            try:
                config = parse_config(document, workspace)
            except ConfigError as exc:
                problems.extend(exc.problems)
    if mode in ("preview", "preview-teardown") and pr_number is None and not raw.get("pr-number"):
        unread = read_event(env).problem
        problems.append(
            "pr-number: required in preview modes (run on pull_request events or pass --pr-number)"
            + (f"; the event payload could not be read ({unread})" if unread else "")
        )
    if config is not None:
        problems.extend(_mode_problem(mode, config.deployment.platform))
    if problems or config is None:
        raise ConfigError(problems)
    assert config_path is not None
    inputs = RunInputs(
        mode=cast(Mode, mode),
        workspace=workspace,
        config_path=config_path,
        validation_run_id=run_id,
        version=version,
        image=image,
        rollback_to=rollback_to,
        pr_number=pr_number,
        github_token=token,
        repository=env.get("GITHUB_REPOSITORY") or None,
        app_id=app_id,
        app_name=app_name,
        ignore_not_found=ignore_not_found,
    )
    return Request(inputs=inputs, config=config)


def _mode_problem(mode: str, platform: str) -> list[str]:
    """A mode the platform has no capability for, refused naming the platforms that have it."""
    needs: type
    if mode in ("preview", "preview-teardown"):
        needs, what, fix = Previews, "has no pull-request previews", "run preview modes"
    elif mode == "delete":
        needs, what, fix = DeletesApps, "has no apps to delete by id or name", "run mode delete"
    else:
        return []
    if registry.descriptor(platform).can(needs):
        return []
    having = ", ".join(name for name in _platform_names() if registry.descriptor(name).can(needs))
    return [f"mode: {platform} {what}; {fix} on a platform that has them ({having})"]


def _platform_names() -> list[str]:
    """The platforms of the schema (in its order) that this build has."""
    named: list[str] = schema()["properties"]["deployment_config"]["properties"]["platform"]["enum"]
    return [name for name in named if name in registry.descriptors()]


_APP_ID = re.compile(r"^[0-9a-fA-F-]{8,64}$")
_APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
"""App Platform's rule for an app name: 2-32 lowercase letters, digits and dashes, starting with a letter."""


def _delete_inputs(raw: Mapping[str, str], mode: str, problems: list[str]) -> tuple[str | None, str | None, bool]:
    """app-id / app-name / ignore-not-found: exactly one app, and only with mode delete."""
    app_id = (raw.get("app-id") or "").strip() or None
    app_name = (raw.get("app-name") or "").strip() or None
    flag = (raw.get("ignore-not-found") or "").strip().lower()
    if flag not in ("", "true", "false"):
        problems.append(f"ignore-not-found: {flag!r} should be true or false")
    if mode != "delete":
        given = [n for n, v in (("app-id", app_id), ("app-name", app_name), ("ignore-not-found", flag)) if v]
        if given:
            problems.append(f"{', '.join(given)}: only used with mode delete (this run's mode is {mode})")
        return None, None, False
    if (app_id is None) == (app_name is None):
        problems.append(
            "app-id, app-name: mode delete needs exactly one of them (the app's id from `doctl apps list`, or its name)"
        )
    if app_id is not None and not _APP_ID.match(app_id):
        problems.append(
            "app-id: should be an App Platform app id (a UUID such as 4f6c71e2-1e90-4762-9fee-6cc4a0a9f2cf)"
        )
    if app_name is not None and not _APP_NAME.match(app_name):
        problems.append("app-name: should be an App Platform app name: 2-32 lowercase letters, digits and '-'")
    return app_id, app_name, flag == "true"


def _pr_number(value: str | None, env: Mapping[str, str], problems: list[str]) -> int | None:
    text = (value or "").strip()
    if not text:
        return read_event(env).pr_number
    # str.isdigit() accepts '²' and other Unicode digits that int() refuses: ASCII only.
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_PR_NUMBER:
        problems.append(f"pr-number: {text!r} should be a positive whole number")
        return None
    return int(text)


# --- the config file ---------------------------------------------------------------------------


def parse_config(document: Any, workspace: Path) -> DeployConfig:
    """Validate a loaded config document against the schema and the cross-field rules."""
    if not isinstance(document, dict):
        raise ConfigError("config: the top level should be a mapping of sections (deployment_config, artifacts, ...)")
    problems = document_problems(document) or schema_problems(schema(), document)
    if problems:
        raise ConfigError(problems)
    problems = [*_cross_field_problems(document, workspace), *bound_problems(document)]
    if problems:
        raise ConfigError(problems)
    return build_config(document, workspace)


# --- cross-field rules -------------------------------------------------------------------------


def _cross_field_problems(doc: Mapping[str, Any], workspace: Path) -> Iterable[str]:
    deployment = doc["deployment_config"]
    platform, strategy = deployment["platform"], deployment["strategy"]
    try:
        described = registry.descriptor(platform)
    except ConfigError as exc:
        yield from exc.problems
        return
    by_platform = {name: registry.descriptor(name).capabilities for name in _platform_names()}
    problem = unsupported_problem(strategy, platform, by_platform)
    if problem:
        yield problem
    yield from described.config_problems(doc, workspace)
    if strategy == "canary" and "canary" in deployment:
        weights = [step["weight"] for step in deployment["canary"]["steps"]]
        for i, (a, b) in enumerate(itertools.pairwise(weights), start=1):
            if b <= a:
                yield f"deployment_config.canary.steps[{i}].weight: {b} should be greater than the step before ({a})"
    yield from canary_problems(deployment)

    endpoint = doc["health_check"]["endpoint"]
    if not endpoint.startswith("/") and not re.match(r"^https?://[^\s/]+", endpoint):
        yield (f"health_check.endpoint: {endpoint!r} should be a path such as /health or an absolute http(s) URL")

    artifacts = doc["artifacts"]
    if "app_spec" in artifacts:
        problem = outside_problem(
            workspace, artifacts["app_spec"], "artifacts.app_spec", must_exist=True, kinds=("file",)
        )
        if problem:
            yield problem
    for key in ("migrations", "odoo_modules"):
        for i, rel in enumerate(artifacts.get(key, [])):
            kinds = ("file", "directory") if key == "migrations" else ("directory",)
            problem = outside_problem(workspace, rel, f"artifacts.{key}[{i}]", must_exist=True, kinds=kinds)
            if problem:
                yield problem
    metrics_file = (doc.get("metrics") or {}).get("textfile")
    if metrics_file:
        problem = outside_problem(workspace, metrics_file, "metrics.textfile", must_exist=False, kinds=("file",))
        if problem:
            yield problem

    gates = doc.get("gates") or {}
    if gates.get("source") == "http" and "url" not in gates:
        yield "gates.url: required when gates.source is http; add the verdict service's base URL"
    odoo = doc.get("odoo") or {}
    if artifacts.get("odoo_modules") and not (odoo.get("upgrade_command") or odoo.get("xmlrpc_url")):
        yield "odoo: artifacts.odoo_modules is set; add odoo.upgrade_command or odoo.xmlrpc_url to upgrade them"
    if odoo.get("upgrade_command") and odoo.get("xmlrpc_url"):
        yield "odoo: set either upgrade_command or xmlrpc_url, not both"
    if any("{database}" in a for a in odoo.get("upgrade_command", [])) and not odoo.get("database"):
        yield "odoo.database: required, odoo.upgrade_command uses {database}"
    if odoo.get("xmlrpc_url"):
        for field in ("database", "username", "password_env_var"):
            if field not in odoo:
                yield f"odoo.{field}: required with odoo.xmlrpc_url"
    notifications = doc.get("notifications") or {}
    if "paging_url" in notifications and "paging_routing_key_env_var" not in notifications:
        yield "notifications.paging_routing_key_env_var: required with notifications.paging_url"


def _inside(workspace: Path, rel: str, field: str, problems: list[str]) -> Path | None:
    problem = outside_problem(workspace, rel, field, must_exist=False, kinds=("file",))
    if problem:
        problems.append(problem)
        return None
    return (workspace / rel).resolve()
