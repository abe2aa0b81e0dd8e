"""An app spec file from the repository (app_action's `.do/app.yaml`): read once, filled in, digested.

`${NAME}` in any string value is replaced by the environment variable NAME, as app_action does,
except App Platform's own bindable variables, which App Platform fills in at deploy time and which
must reach it intact: any name with a dot (`${db.DATABASE_URL}`, `${_self.PRIVATE_URL}`,
`${web.HOSTNAME}`) and the app-wide `${APP_URL}`, `${APP_DOMAIN}`, `${APP_ID}`. A name that is
neither set nor bindable is refused (exit 2) rather than sent as an empty string. Values are
replaced after parsing, so a value holding `:` or a newline cannot change the YAML's structure,
and in one pass, so a value holding `${OTHER}` is sent as written, never expanded again.

What the gates hold it to (what runs must be exactly what was validated, and a filled-in value
changes what runs as much as the file does):
- `app_spec`: sha256 of the file's bytes as written, the same bytes that are parsed and deployed;
- `app_spec_values`: for every `${NAME}` filled in, `sha256:<hex of the value's UTF-8 bytes>`.
  A value filled in where App Platform keeps secrets (the `value` of an env whose `type` is
  `SECRET`, and any `registry_credentials`) is recorded as `secret` instead: it is rotated without
  a new validation, never hashed (a hash of a short password gives it away), never logged
  (it is registered with the redactor), and App Platform stores it encrypted. A name used both as
  a secret and in the clear is recorded by its digest: the clear use already shows it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import ConfigError
from orchestrator.redaction import register

__all__ = ["APP_WIDE", "SECRET_VALUE", "FilledSpec", "fill_spec", "read_spec_file", "value_digest"]

APP_WIDE = frozenset({"APP_URL", "APP_DOMAIN", "APP_ID"})
SECRET_VALUE = "secret"
"""What `app_spec_values` records for a value filled in where App Platform keeps secrets."""
_REFERENCE = re.compile(r"\$\{([^{}]+)\}")


@dataclass(frozen=True, slots=True)
class FilledSpec:
    """The spec as it will be deployed, and what the gates compare it by."""

    document: dict[str, Any]
    path: str
    """Workspace-relative POSIX path (the key of `app_spec` in the digests)."""
    file_sha256: str
    values: tuple[tuple[str, str], ...]
    """(NAME, `sha256:<hex>` or `secret`) for every `${NAME}` filled in, sorted by name."""


def value_digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def read_spec_file(path: Path, env: Mapping[str, str], *, shown: str, field: str = "artifacts.app_spec") -> FilledSpec:
    """Read the spec at `path` once and fill it in from `env`. Raises ConfigError naming `field`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {shown} ({exc.strerror})") from exc
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{field}: {shown} is not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("name"), str) or not document["name"]:
        raise ConfigError(f"{field}: {shown} should be an App Platform app spec with a `name` (the app's name)")
    filled = fill_spec(document, env, shown=shown, field=field)
    return FilledSpec(filled.document, shown, hashlib.sha256(raw).hexdigest(), filled.values)


def fill_spec(document: dict[str, Any], env: Mapping[str, str], *, shown: str, field: str) -> FilledSpec:
    """`document` with every `${NAME}` filled in (file digest left empty). Raises ConfigError for
    names neither set nor bindable, naming them all."""
    used: dict[str, bool] = {}
    missing: list[str] = []
    result = _fill(document, env, used, missing, secret=False)
    if missing:
        names = ", ".join(sorted(set(missing)))
        raise ConfigError(
            f"{field}: {shown} refers to ${{{missing[0]}}} but the environment does not set "
            f"{names}; pass it in the step's env, or write it as an App Platform bindable variable"
        )
    values: list[tuple[str, str]] = []
    for name, secret_only in sorted(used.items()):
        if secret_only:
            register(env[name])
            values.append((name, SECRET_VALUE))
        else:
            values.append((name, value_digest(env[name])))
    return FilledSpec(result, shown, "", tuple(values))


def _fill(value: Any, env: Mapping[str, str], used: dict[str, bool], missing: list[str], *, secret: bool) -> Any:
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if "." in name or name in APP_WIDE:
                return match.group(0)
            if name not in env:
                missing.append(name)
                return match.group(0)
            # Secret only while every use is in a secret place.
            used[name] = used.get(name, True) and secret
            return env[name]

        return _REFERENCE.sub(one, value)
    if isinstance(value, dict):
        is_secret_env = str(value.get("type", "")).upper() == "SECRET"
        return {
            key: _fill(
                item,
                env,
                used,
                missing,
                secret=secret or key == "registry_credentials" or (is_secret_env and key == "value"),
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_fill(item, env, used, missing, secret=secret) for item in value]
    return value
