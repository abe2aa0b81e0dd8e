"""The emulator's storage as etcd and the watch cache present it: one global resourceVersion, a
history of every write (so a list can be served at an exact resourceVersion, a paginated list stays
one consistent snapshot, and a watch resumes from any point), and label and field selectors.

Semantics from the API concepts page ("Resource versions", "Retrieving large results sets in
chunks", "Efficient detection of changes"):
- list/get without resourceVersion: the latest state; `resourceVersion=0`: any state (the latest
  here); `resourceVersion=N` (NotOlderThan): at least N, else 504 "Too large resource version";
  `resourceVersionMatch=Exact`: the state at exactly N.
- `limit` + `continue`: pages in key order, each page from the snapshot of the first one;
  `metadata.remainingItemCount` and `metadata.continue` while more remain.
- watch: events after N (ADDED/MODIFIED/DELETED, an object leaving a label selector as DELETED,
  entering it as ADDED); without N, or with `sendInitialEvents=true`, first an ADDED per object, the
  latter ending in a BOOKMARK annotated `k8s.io/initial-events-end`.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from dataclasses import dataclass
from typing import Any

from tests.peers.k8s_objects import KINDS, ApiError, status_doc
from tests.peers.k8s_selectors import FieldTerm, LabelTerm, fields_match, labels_match

__all__ = ["Event", "ListPage", "Store"]

Key = tuple[str, str, str]
"""(kind, namespace, name)."""


@dataclass(frozen=True)
class Event:
    rv: int
    type: str
    key: Key
    obj: dict[str, Any]
    previous: dict[str, Any] | None


@dataclass(frozen=True)
class ListPage:
    items: list[dict[str, Any]]
    resource_version: str
    next_token: str | None
    remaining: int | None


@dataclass(frozen=True)
class Query:
    kind: str
    namespace: str | None
    labels: list[LabelTerm]
    fields: list[FieldTerm]

    def matches(self, key: Key, obj: dict[str, Any] | None) -> bool:
        if obj is None or key[0] != self.kind or (self.namespace is not None and key[1] != self.namespace):
            return False
        return labels_match(self.labels, obj["metadata"].get("labels") or {}) and fields_match(self.fields, obj)


class Store:
    def __init__(self, lock: threading.RLock) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.rv = 1000
        self.history: list[Event] = []
        self.changed = threading.Condition(lock)

    def write(self, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        """Store `obj` under a new resourceVersion (ADDED or MODIFIED); returns a copy of what is stored."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        previous = self.objects.get(key)
        self.objects[key] = obj
        self._record(Event(self.rv, "MODIFIED" if previous else "ADDED", key, copy.deepcopy(obj), previous))
        return copy.deepcopy(obj)

    def remove(self, key: Key) -> dict[str, Any]:
        obj = self.objects.pop(key)
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._record(Event(self.rv, "DELETED", key, copy.deepcopy(obj), obj))
        return copy.deepcopy(obj)

    def _record(self, event: Event) -> None:
        self.history.append(event)
        self.changed.notify_all()

    def at(self, resource_version: str, match: str) -> dict[Key, dict[str, Any]]:
        """The objects as of `resource_version` under `resourceVersionMatch` `match` (see the module doc)."""
        if match and not resource_version:
            raise ApiError(
                400,
                status_doc(400, "BadRequest", "resourceVersionMatch is forbidden unless resourceVersion is provided"),
            )
        if not resource_version or (resource_version == "0" and match != "Exact"):
            return self.objects
        wanted = _number(resource_version)
        if wanted > self.rv:
            message = f"Too large resource version: {wanted}, current: {self.rv}"
            doc = status_doc(504, "Timeout", message)
            doc["details"] = {
                "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]
            }
            doc["details"]["retryAfterSeconds"] = 1
            raise ApiError(504, doc)
        if match != "Exact":
            return self.objects
        state: dict[Key, dict[str, Any]] = {}
        for event in self.history:
            if event.rv > wanted:
                break
            if event.type == "DELETED":
                state.pop(event.key, None)
            else:
                state[event.key] = event.obj
        return state

    def list(self, query: Query, *, limit: int, token: str, resource_version: str, match: str) -> ListPage:
        start = ""
        if token:
            if resource_version or match:
                message = "specifying resource version is not allowed when using continue"
                raise ApiError(400, status_doc(400, "BadRequest", message))
            snapshot_rv, start = _decode(token)
            state = self.at(str(snapshot_rv), "Exact")
            list_rv = str(snapshot_rv)
        else:
            state = self.at(resource_version, match)
            list_rv = resource_version if match == "Exact" else str(self.rv)
        found = sorted(
            (f"{key[1]}/{key[2]}", obj)
            for key, obj in state.items()
            if query.matches(key, obj) and f"{key[1]}/{key[2]}" > start
        )
        page = found[:limit] if limit > 0 else found
        items = []
        for _position, obj in page:
            item = copy.deepcopy(obj)
            item.pop("kind", None)
            item.pop("apiVersion", None)
            items.append(item)
        more = len(found) - len(page)
        next_token = _encode(int(list_rv), page[-1][0]) if more > 0 else None
        return ListPage(items, list_rv, next_token, more if more > 0 else None)

    def events(self, query: Query, after: int) -> list[tuple[str, dict[str, Any], int]]:
        """(type, object, rv) for the changes after `after` that `query` sees, selector moves included."""
        out = []
        for event in self.history:
            if event.rv <= after:
                continue
            now = event.type != "DELETED" and query.matches(event.key, event.obj)
            before = query.matches(event.key, event.previous)
            if event.type == "DELETED" and before:
                out.append(("DELETED", event.obj, event.rv))
            elif now and not before:
                out.append(("ADDED", event.obj, event.rv))
            elif now:
                out.append(("MODIFIED", event.obj, event.rv))
            elif before:
                out.append(("DELETED", event.obj, event.rv))
        return out

    def initial(self, query: Query) -> list[dict[str, Any]]:
        return [obj for key, obj in sorted(self.objects.items()) if query.matches(key, obj)]


def bookmark(kind: str, resource_version: int, *, initial_end: bool) -> dict[str, Any]:
    api_version, kind_name = KINDS[kind]
    metadata: dict[str, Any] = {"resourceVersion": str(resource_version)}
    if initial_end:
        metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": kind_name, "apiVersion": api_version, "metadata": metadata}


def _number(resource_version: str) -> int:
    try:
        return int(resource_version)
    except ValueError:
        message = f'invalid resource version "{resource_version}"'
        raise ApiError(400, status_doc(400, "BadRequest", message)) from None


def _encode(resource_version: int, start: str) -> str:
    doc = {"v": "meta.k8s.io/v1", "rv": resource_version, "start": start + "\x00"}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


def _decode(token: str) -> tuple[int, str]:
    try:
        doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(doc["rv"]), str(doc["start"]).rstrip("\x00")
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, status_doc(400, "BadRequest", f"continue key is not valid: {token}")) from None
