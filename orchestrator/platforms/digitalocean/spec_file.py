"""An App Platform app spec from the repository (app_action's `.do/app.yaml`), read and filled in.

`${NAME}` in any string value is replaced by the environment variable NAME, as app_action does,
except App Platform's own bindable variables, which App Platform fills in at deploy time and which
must reach it intact: any name with a dot (`${db.DATABASE_URL}`, `${_self.PRIVATE_URL}`,
`${web.HOSTNAME}`) and the app-wide `${APP_URL}`, `${APP_DOMAIN}`, `${APP_ID}`. A name that is
neither set nor bindable is refused (exit 2) rather than sent as an empty string. Values are
replaced after parsing, so a value holding `:` or a newline cannot change the YAML's structure.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import ConfigError

__all__ = ["APP_WIDE", "load_app_spec", "substitute", "with_sealed_values"]

APP_WIDE = frozenset({"APP_URL", "APP_DOMAIN", "APP_ID"})
_REFERENCE = re.compile(r"\$\{([^{}]+)\}")


def load_app_spec(path: Path, env: Mapping[str, str], *, field: str = "artifacts.app_spec") -> dict[str, Any]:
    """The spec at `path`, `${VAR}`s filled in from `env`. Raises ConfigError naming `field`."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {path} ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{field}: {path} is not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("name"), str) or not document["name"]:
        raise ConfigError(f"{field}: {path} should be an App Platform app spec with a `name` (the app's name)")
    missing: list[str] = []
    filled = substitute(document, env, missing)
    if missing:
        names = ", ".join(sorted(set(missing)))
        raise ConfigError(
            f"{field}: {path} refers to ${{{missing[0]}}} but the environment does not set "
            f"{names}; pass it in the step's env, or write it as an App Platform bindable variable"
        )
    result: dict[str, Any] = filled
    return result


def substitute(value: Any, env: Mapping[str, str], missing: list[str]) -> Any:
    """`value` with `${NAME}` replaced in every string; unset non-bindable names appended to `missing`."""
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if "." in name or name in APP_WIDE:
                return match.group(0)
            if name in env:
                return env[name]
            missing.append(name)
            return match.group(0)

        return _REFERENCE.sub(one, value)
    if isinstance(value, dict):
        return {k: substitute(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, env, missing) for v in value]
    return value


def with_sealed_values(spec: dict[str, Any], live: dict[str, Any] | None) -> dict[str, Any]:
    """`spec` with the live app's encrypted `registry_credentials` on every image component whose
    block in the repository names none for the same registry: a file in git never holds them, and
    App Platform needs them on every submission to keep pulling a private image."""
    new = copy.deepcopy(spec)
    sealed = {
        str(c.get("name")): c["image"]
        for kind in ("services", "workers", "jobs")
        for c in (live or {}).get(kind) or []
        if isinstance(c.get("image"), dict) and c["image"].get("registry_credentials")
    }
    for kind in ("services", "workers", "jobs"):
        for component in new.get(kind) or []:
            image, old = component.get("image"), sealed.get(str(component.get("name")))
            if not isinstance(image, dict) or not old or image.get("registry_credentials"):
                continue
            same_registry = image.get("registry_type") == old.get("registry_type") and image.get("registry") == old.get(
                "registry"
            )
            if same_registry:
                image["registry_credentials"] = old["registry_credentials"]
    return new
