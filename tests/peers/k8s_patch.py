"""The object patch formats the Kubernetes API server accepts (server-side apply aside).

- JSON merge patch (RFC 7386, `application/merge-patch+json`): maps merge, `null` deletes a key,
  any other value (lists included) replaces.
- Strategic merge patch (`application/strategic-merge-patch+json`): like a merge patch, except that
  lists with a patch merge key in the built-in types (containers by `name`, ports by
  `containerPort`/`port`, env by `name`, conditions by `type`, ...) merge element by element, and
  the `$patch: replace|delete` directive on a map. Enough of it for the fields Deployments and
  Services use here.
- JSON patch (RFC 6902, `application/json-patch+json`): a list of add, remove, replace, move, copy
  and test operations on JSON pointers (`kubectl patch --type=json`); a failed one is a PatchError.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["PatchError", "json_patch", "merge_patch", "strategic_merge_patch"]

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


class PatchError(ValueError):
    """A JSON patch operation that cannot apply (the API server answers 422)."""


def json_patch(target: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise PatchError("the patch is not a list of operations")
    doc = copy.deepcopy(target)
    for operation in operations:
        op, path = operation.get("op"), str(operation.get("path", ""))
        if op in ("move", "copy"):
            value = _pointer_get(doc, str(operation.get("from", "")))
            if op == "move":
                doc = _pointer_remove(doc, str(operation["from"]))
            doc = _pointer_add(doc, path, copy.deepcopy(value))
        elif op == "add":
            doc = _pointer_add(doc, path, copy.deepcopy(operation.get("value")))
        elif op == "remove":
            doc = _pointer_remove(doc, path)
        elif op == "replace":
            doc = _pointer_add(_pointer_remove(doc, path), path, copy.deepcopy(operation.get("value")))
        elif op == "test":
            if _pointer_get(doc, path) != operation.get("value"):
                raise PatchError(f"testing value {path} failed")
        else:
            raise PatchError(f"unexpected kind: {op}")
    return doc


def _parts(path: str) -> list[str]:
    if path and not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer: {path}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def _pointer_get(doc: Any, path: str) -> Any:
    for part in _parts(path):
        try:
            doc = doc[int(part)] if isinstance(doc, list) else doc[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise PatchError(f"doc is missing path: {path}") from None
    return doc


def _parent(doc: Any, path: str) -> tuple[Any, str]:
    parts = _parts(path)
    if not parts:
        raise PatchError("the whole document cannot be patched")
    return _pointer_get(doc, "".join(f"/{p.replace('~', '~0').replace('/', '~1')}" for p in parts[:-1])), parts[-1]


def _pointer_add(doc: Any, path: str, value: Any) -> Any:
    parent, last = _parent(doc, path)
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last) if last.isdigit() else -1
        if not 0 <= index <= len(parent):
            raise PatchError(f"add operation does not apply: index {last} out of range: {path}")
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise PatchError(f"add operation does not apply: doc is missing path: {path}")
    return doc


def _pointer_remove(doc: Any, path: str) -> Any:
    parent, last = _parent(doc, path)
    try:
        if isinstance(parent, list):
            parent.pop(int(last))
        else:
            del parent[last]
    except (KeyError, IndexError, ValueError, TypeError):
        raise PatchError(f"remove operation does not apply: doc is missing path: {path}") from None
    return doc
