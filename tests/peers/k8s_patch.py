"""The two object patch formats the Kubernetes API server accepts from our client.

- JSON merge patch (RFC 7386, `application/merge-patch+json`): maps merge, `null` deletes a key,
  any other value (lists included) replaces.
- Strategic merge patch (`application/strategic-merge-patch+json`): like a merge patch, except that
  lists with a patch merge key in the built-in types (containers by `name`, ports by
  `containerPort`/`port`, env by `name`, conditions by `type`, ...) merge element by element, and
  the `$patch: replace|delete` directive on a map. Enough of it for the fields Deployments and
  Services use here.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["merge_patch", "strategic_merge_patch"]

_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "conditions": "type",
    "imagePullSecrets": "name",
}
_PORT_KEYS = ("containerPort", "port")


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge_patch(target: Any, patch: Any, key: str | None = None) -> Any:
    if isinstance(patch, dict):
        directive = patch.get("$patch")
        if directive == "delete":
            return None
        body = {k: v for k, v in patch.items() if k != "$patch"}
        if directive == "replace" or not isinstance(target, dict):
            return copy.deepcopy(body)
        out = copy.deepcopy(target)
        for name, value in body.items():
            if value is None:
                out.pop(name, None)
                continue
            merged = strategic_merge_patch(out.get(name), value, name)
            if merged is None:
                out.pop(name, None)
            else:
                out[name] = merged
        return out
    if isinstance(patch, list) and isinstance(target, list) and key is not None:
        merge_key = _merge_key(key, patch + target)
        if merge_key is not None:
            return _merge_list(target, patch, merge_key)
    return copy.deepcopy(patch)


def _merge_key(field: str, items: list[Any]) -> str | None:
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    if field == "ports":
        return next((k for k in _PORT_KEYS if all(k in i for i in items)), None)
    return _MERGE_KEYS.get(field)


def _merge_list(target: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    out = copy.deepcopy(target)
    for item in patch:
        index = next((i for i, t in enumerate(out) if t.get(merge_key) == item.get(merge_key)), None)
        if index is None:
            if item.get("$patch") != "delete":
                out.append({k: v for k, v in item.items() if k != "$patch"})
            continue
        merged = strategic_merge_patch(out[index], item)
        if merged is None:
            out.pop(index)
        else:
            out[index] = merged
    return out
