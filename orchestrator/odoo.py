"""Odoo modules: read their manifests as data, decide which changed, and upgrade those.

A manifest (`__manifest__.py`) is parsed with `ast` and evaluated with `ast.literal_eval`;
it is never executed, so a manifest that calls a function, names a variable or imports
anything is refused (`ConfigError`) instead of running code on the deploy machine.

The upgrade runs after the migrations and before traffic moves, in one of two ways:
- `odoo.upgrade_command`: an argv run without a shell, `{modules}` replaced by the
  comma-separated module names and `{database}` by `odoo.database` (e.g.
  `["odoo", "-d", "{database}", "-u", "{modules}", "--stop-after-init"]`);
- `odoo.xmlrpc_url`: Odoo's external API. Authenticate on `/xmlrpc/2/common`, find the
  modules by name on `/xmlrpc/2/object` (`ir.module.module` `search_read`), then call
  `button_immediate_upgrade` on their ids.
When both are configured, the command wins (it is the one that can also run offline).
Any failure is a `DeployError` carrying the tail of the command's or server's output,
secrets masked.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import os
import re
import signal
import subprocess
import time
import xmlrpc.client
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from orchestrator.artifacts import ArtifactDigests, resolve_in_workspace
from orchestrator.contract import OdooConfig
from orchestrator.errors import ConfigError, DeployError
from orchestrator.redaction import Secret, mask_url, redact
from orchestrator.safe_files import read_regular, resolve_safely

__all__ = ["MANIFEST", "OdooModule", "OdooUpgrade", "plan_upgrade", "read_manifest", "read_modules", "upgrade"]

MANIFEST = "__manifest__.py"
_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_TAIL_LINES = 40
_TAIL_CHARS = 4000
_MAX_MANIFEST_BYTES = 1 << 20

_log = logging.getLogger(__name__)


class _RunLog(Protocol):
    def info(self, message: str) -> None: ...


@dataclass(frozen=True, slots=True)
class OdooModule:
    """One module directory: `path` is its workspace-relative key (as in the artifact digests)."""

    path: str
    name: str
    version: str | None
    depends: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name, "version": self.version, "depends": list(self.depends)}


@dataclass(frozen=True, slots=True)
class OdooUpgrade:
    """What an upgrade did: which modules, how, how long, and the end of its output."""

    modules: tuple[str, ...]
    method: Literal["command", "xmlrpc", "none"]
    duration_seconds: float
    output_tail: str = ""


def read_modules(paths: Sequence[Path], workspace: Path) -> tuple[OdooModule, ...]:
    """Every module in `artifacts.odoo_modules`, manifests read as data. Raises ConfigError listing every problem."""
    root = workspace.resolve()
    problems: list[str] = []
    modules: list[OdooModule] = []
    for index, entry in enumerate(paths):
        field = f"artifacts.odoo_modules[{index}]"
        try:
            key, directory = resolve_in_workspace(root, entry, field)
            name = Path(key).name
            if not _NAME.match(name):
                raise ConfigError(
                    f"{field}: {key}: the directory name {name!r} is not a valid Odoo module name "
                    "(letters, digits and underscores only)"
                )
            manifest = directory / MANIFEST
            inside = resolve_safely(manifest, field=field, shown=f"{key}/{MANIFEST}").is_relative_to(directory)
            if not manifest.is_file() or not inside:
                raise ConfigError(f"{field}: {key} has no {MANIFEST}; list Odoo module directories here")
            data = read_manifest(manifest, field=f"{field}: {key}/{MANIFEST}")
            modules.append(OdooModule(path=key, name=name, version=data["version"], depends=data["depends"]))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return tuple(modules)


def read_manifest(path: Path, *, field: str) -> dict[str, Any]:
    """The manifest's dict with `version` (str | None) and `depends` (tuple) checked. Never executes it."""
    try:
        source = read_regular(path, field=field, limit=_MAX_MANIFEST_BYTES).decode("utf-8")
        tree = ast.parse(source, filename=str(path), mode="eval")
    except (UnicodeDecodeError, SyntaxError, ValueError) as exc:
        raise ConfigError(
            f"{field}: not a single dict literal ({type(exc).__name__}: {exc}); a manifest is data only: "
            "no imports, assignments or statements"
        ) from None
    if not isinstance(tree.body, ast.Dict):
        raise ConfigError(f"{field}: the manifest must be one dict literal, found {type(tree.body).__name__}")
    offender = _first_code(tree.body)
    if offender is not None:
        raise ConfigError(
            f"{field}: line {getattr(offender, 'lineno', '?')}: {_what(offender)} is code, not data; "
            "manifests are read with ast.literal_eval and never executed, so write the literal value"
        )
    try:
        data = ast.literal_eval(tree.body)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ConfigError(f"{field}: not a literal dict ({exc})") from None
    version = data.get("version")
    if version is not None and not isinstance(version, str):
        raise ConfigError(f"{field}: `version` must be a string such as '17.0.1.0.0'")
    depends = data.get("depends", [])
    if not isinstance(depends, (list, tuple)) or not all(isinstance(d, str) for d in depends):
        raise ConfigError(f"{field}: `depends` must be a list of module names")
    return {**data, "version": version, "depends": tuple(depends)}


_LITERAL_NODES = (
    ast.Dict,
    ast.List,
    ast.Tuple,
    ast.Set,
    ast.Constant,
    ast.UnaryOp,
    ast.USub,
    ast.UAdd,
    ast.Load,
)


def _first_code(node: ast.AST) -> ast.AST | None:
    """The first node that is not part of a literal (a call, a name, an attribute, a comprehension...)."""
    for child in ast.walk(node):
        if not isinstance(child, _LITERAL_NODES):
            return child
    return None


def _what(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return f"a function call ({ast.unparse(node.func)}(...))"
    if isinstance(node, ast.Name):
        return f"a name ({node.id})"
    if isinstance(node, ast.Attribute):
        return f"an attribute ({ast.unparse(node)})"
    return f"an expression ({type(node).__name__})"


def plan_upgrade(
    modules: Sequence[OdooModule], digests: ArtifactDigests, previous: Mapping[str, str]
) -> tuple[str, ...]:
    """Names of the modules whose tree digest differs from the last successful deploy's (or that are new).

    `previous` maps module path -> digest, from the ledger. Pure. Order: as configured.
    """
    current = dict(digests.modules)
    return tuple(m.name for m in modules if m.path not in previous or previous[m.path] != current.get(m.path))


def upgrade(
    modules: Sequence[str],
    config: OdooConfig,
    env: Mapping[str, str],
    workspace: Path,
    *,
    log: _RunLog | None = None,
) -> OdooUpgrade:
    """Upgrade `modules` on the Odoo instance. Not idempotent in cost, idempotent in effect.

    Raises DeployError (operation "odoo-upgrade") with the output tail on failure or timeout,
    ConfigError when neither an upgrade command nor an XML-RPC URL is configured.
    """
    names = tuple(modules)
    if not names:
        return OdooUpgrade(modules=(), method="none", duration_seconds=0.0)
    for name in names:
        if not _NAME.match(name):
            raise ConfigError(f"odoo: {name!r} is not a valid Odoo module name")
    started = time.monotonic()
    say = log.info if log is not None else _log.info
    if config.upgrade_command:
        say(f"odoo: upgrading {', '.join(names)} with {config.upgrade_command[0]}")
        tail = _run_command(names, config, env, workspace)
        method: Literal["command", "xmlrpc"] = "command"
    elif config.xmlrpc_url:
        say(f"odoo: upgrading {', '.join(names)} through {mask_url(config.xmlrpc_url)}")
        tail = _call_xmlrpc(names, config, env)
        method = "xmlrpc"
    else:
        raise ConfigError("odoo: modules changed but neither odoo.upgrade_command nor odoo.xmlrpc_url is set")
    duration = time.monotonic() - started
    say(f"odoo: upgraded {', '.join(names)} in {duration:.1f} s")
    return OdooUpgrade(modules=names, method=method, duration_seconds=duration, output_tail=tail)


def _failure(message: str, output: str = "") -> DeployError:
    tail = _tail(output)
    text = f"{message}\n--- output (last lines) ---\n{tail}" if tail else message
    return DeployError(redact(text), platform="odoo", operation="odoo-upgrade")


def _tail(output: str) -> str:
    lines = output.strip().splitlines()[-_TAIL_LINES:]
    return redact("\n".join(lines)[-_TAIL_CHARS:])


def _run_command(names: tuple[str, ...], config: OdooConfig, env: Mapping[str, str], workspace: Path) -> str:
    assert config.upgrade_command is not None
    argv: list[str] = []
    for arg in config.upgrade_command:
        if "{database}" in arg and not config.database:
            raise ConfigError("odoo.database: required, odoo.upgrade_command uses {database}")
        argv.append(arg.replace("{modules}", ",".join(names)).replace("{database}", config.database or ""))
    try:
        # Its own session, so a timeout can stop the whole process group (Odoo forks workers).
        process = subprocess.Popen(
            argv,
            cwd=workspace,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise _failure(f"odoo upgrade command {argv[0]!r} could not start: {exc.strerror or exc}") from None
    try:
        raw, _ = process.communicate(timeout=config.timeout_seconds)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raw, _ = process.communicate()
        raise _failure(
            f"odoo upgrade command timed out after {config.timeout_seconds:g} s (odoo.timeout_seconds) and was killed",
            raw.decode(errors="replace"),
        ) from None
    output = raw.decode(errors="replace")
    if process.returncode != 0:
        raise _failure(f"odoo upgrade command exited with {process.returncode} upgrading {', '.join(names)}", output)
    return _tail(output)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


class _TimeoutTransport(xmlrpc.client.Transport):
    """xmlrpc.client has no timeout parameter; the connection's socket timeout carries one."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host: Any) -> Any:
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection


class _TimeoutSafeTransport(xmlrpc.client.SafeTransport):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host: Any) -> Any:
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection


def _call_xmlrpc(names: tuple[str, ...], config: OdooConfig, env: Mapping[str, str]) -> str:
    assert config.xmlrpc_url is not None
    missing = [f"odoo.{f}" for f in ("database", "username", "password_env_var") if not getattr(config, f)]
    if missing:
        raise ConfigError(f"{', '.join(missing)}: required with odoo.xmlrpc_url")
    assert config.database and config.username and config.password_env_var
    value = env.get(config.password_env_var, "")
    if not value:
        raise ConfigError(f"odoo.password_env_var: the environment variable {config.password_env_var} is not set")
    password = Secret(value, config.password_env_var)
    url = config.xmlrpc_url.rstrip("/")
    where = mask_url(url)

    def proxy(path: str) -> xmlrpc.client.ServerProxy:
        transport: xmlrpc.client.Transport = (
            _TimeoutSafeTransport(config.timeout_seconds)
            if url.startswith("https:")
            else _TimeoutTransport(config.timeout_seconds)
        )
        return xmlrpc.client.ServerProxy(f"{url}{path}", transport=transport, allow_none=True)

    db, user = config.database, config.username
    try:
        uid = proxy("/xmlrpc/2/common").authenticate(db, user, password.reveal(), {})
        if not uid:
            raise _failure(f"odoo at {where}: user {user!r} could not log in to database {db!r}; check the password")
        models = proxy("/xmlrpc/2/object")
        found: Any = models.execute_kw(
            db,
            uid,
            password.reveal(),
            "ir.module.module",
            "search_read",
            [[["name", "in", list(names)]]],
            {"fields": ["name", "state"]},
        )
        by_name: dict[str, Any] = {row["name"]: row for row in found}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise _failure(
                f"odoo at {where}: no module {', '.join(unknown)} in database {db!r}; "
                "update the apps list (Apps > Update Apps List) so Odoo sees the new module"
            )
        not_installed = [n for n in names if by_name[n].get("state") not in ("installed", "to upgrade")]
        if not_installed:
            raise _failure(
                f"odoo at {where}: {', '.join(not_installed)} not installed in database {db!r}; "
                "install it once by hand, later deploys upgrade it"
            )
        ids = [by_name[n]["id"] for n in names]
        models.execute_kw(db, uid, password.reveal(), "ir.module.module", "button_immediate_upgrade", [ids])
    except xmlrpc.client.Fault as fault:
        raise _failure(f"odoo at {where} refused the upgrade of {', '.join(names)}", str(fault.faultString)) from None
    except xmlrpc.client.ProtocolError as exc:
        raise _failure(f"odoo at {where}: HTTP {exc.errcode} {exc.errmsg}") from None
    except TimeoutError:
        raise _failure(
            f"odoo at {where}: no answer within {config.timeout_seconds:g} s (odoo.timeout_seconds) "
            f"upgrading {', '.join(names)}; the upgrade may still be running on the server"
        ) from None
    except OSError as exc:
        raise _failure(f"odoo at {where}: unreachable ({exc.strerror or exc})") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise _failure(f"odoo at {where}: unexpected answer to search_read ({type(exc).__name__}: {exc})") from None
    return f"button_immediate_upgrade on {', '.join(names)} (ids {', '.join(str(i) for i in ids)})"
