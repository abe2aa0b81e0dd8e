"""The emulator's REST surface: one request in, one answer out (the caller holds the lock).

apps/v1 Deployments and v1 Services, namespaced and across namespaces: get, list (labelSelector,
fieldSelector, limit/continue, resourceVersion/resourceVersionMatch), watch, create, replace,
patch (strategic merge and JSON merge), delete (with propagation policies and preconditions), and
the `status` subresource; discovery; `kubectl get`'s Table. Errors are `Status` objects with the
API server's reasons and wording: 400 BadRequest, 404 NotFound, 409 AlreadyExists/Conflict,
415 UnsupportedMediaType, 422 Invalid, 504 Timeout (a resourceVersion from the future).
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.peers import k8s_contract
from tests.peers.k8s_controller import Controller
from tests.peers.k8s_discovery import discovery, table
from tests.peers.k8s_objects import (
    KINDS,
    ApiError,
    default,
    managed_entry,
    owned_fields,
    resource,
    scale_of,
    status_doc,
    timestamp,
    validate,
)
from tests.peers.k8s_patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from tests.peers.k8s_selectors import SelectorError, parse_fields, parse_labels
from tests.peers.k8s_store import Key, Query, Store

__all__ = ["Answer", "Api", "WatchRequest"]

_GROUPS = {"deployments": "/apis/apps/v1", "services": "/api/v1"}
_COLLECTION = re.compile(r"^(/apis/apps/v1|/api/v1)(?:/namespaces/([^/]+))?/(deployments|services)$")
_SCALE = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)/scale$")
_OBJECT = re.compile(r"^(/apis/apps/v1|/api/v1)/namespaces/([^/]+)/(deployments|services)/([^/]+)(/status)?$")
_DEFINITIONS = {"deployments": "io.k8s.api.apps.v1.Deployment", "services": "io.k8s.api.core.v1.Service"}
_PATCHES = {
    "application/merge-patch+json": merge_patch,
    "application/strategic-merge-patch+json": strategic_merge_patch,
    "application/json-patch+json": json_patch,
}


@dataclass(frozen=True)
class WatchRequest:
    query: Query
    since: int | None
    """Events after this resourceVersion; None: start with the current objects as ADDED."""
    initial_end_bookmark: bool
    timeout: float


@dataclass
class Answer:
    status: int
    doc: dict[str, Any] | None = None
    content_type: str = "application/json"
    watch: WatchRequest | None = None
    warnings: list[str] = field(default_factory=list)
    """`Warning` headers (299): unknown fields dropped under fieldValidation=Warn."""


class Api:
    def __init__(self, store: Store, controller: Controller) -> None:
        self.store = store
        self.controller = controller
        self.namespaces = {"default", "kube-system", "kube-public", "kube-node-lease"}
        """Namespaces that exist: creating in any other is 404, as on a real cluster."""

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Answer:
        try:
            return self._route(method, path.rstrip("/") or "/", query, headers, body)
        except ApiError as exc:
            return Answer(exc.code, exc.status)
        except SelectorError as exc:
            return Answer(400, status_doc(400, "BadRequest", str(exc)))
        except ValueError as exc:
            return Answer(
                400, status_doc(400, "BadRequest", f"the body of the request was in an unknown format: {exc}")
            )

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Answer:
        manager = query.get("fieldManager") or headers.get("user-agent", "unknown").split("/", 1)[0]
        validation = query.get("fieldValidation") or "Warn"
        if validation not in ("Ignore", "Warn", "Strict"):
            message = (
                f'fieldValidation: Unsupported value: "{validation}": supported values: "Ignore", "Strict", "Warn"'
            )
            raise ApiError(400, status_doc(400, "BadRequest", message))
        wants_table = "as=Table" in headers.get("accept", "")
        if method == "GET" and (doc := discovery(path)) is not None:
            return Answer(200, doc)
        if (m := _COLLECTION.match(path)) is not None and _GROUPS[m.group(3)] == m.group(1):
            _group, namespace, kind = m.groups()
            if method == "GET":
                return self._list(kind, namespace, query, wants_table)
            if method == "POST" and namespace is not None:
                document, warnings = _decode(kind, json.loads(body), validation)
                return Answer(201, self.create(kind, namespace, document, manager), warnings=warnings)
        if (m := _SCALE.match(path)) is not None:
            return self._scale(("deployments", *m.groups()), method, headers, body, manager)
        if (m := _OBJECT.match(path)) is not None and _GROUPS[m.group(3)] == m.group(1):
            _group, namespace, kind, name, sub = m.groups()
            key = (kind, namespace, name)
            if key not in self.store.objects:
                raise _not_found(kind, name)
            if method == "GET":
                obj = self.store.at(query.get("resourceVersion", ""), "")[key]
                if wants_table:
                    return Answer(200, table(kind, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]}))
                return Answer(200, copy.deepcopy(obj))
            if method == "DELETE" and not sub:
                return self._delete(key, query, json.loads(body) if body else {})
            if method == "PUT":
                document, warnings = _decode(kind, json.loads(body), validation)
                return Answer(200, self.update(key, document, manager, status_only=bool(sub)), warnings=warnings)
            if method == "PATCH":
                patch = _PATCHES.get(headers.get("content-type", "").split(";")[0].strip())
                if patch is None:
                    message = f"the body of the request was in an unknown format: {headers.get('content-type')}"
                    raise ApiError(415, status_doc(415, "UnsupportedMediaType", message, name, kind))
                changes = json.loads(body)
                try:
                    wanted = dict(patch(self.store.objects[key], changes))
                except PatchError as exc:
                    raise ApiError(422, status_doc(422, "Invalid", str(exc), name, kind)) from None
                # A patch that names a resourceVersion is a precondition (checked by update), as on the server.
                wanted, warnings = _decode(kind, wanted, validation)
                owned = owned_fields(changes if isinstance(changes, dict) else wanted)
                result = self.update(key, wanted, manager, status_only=bool(sub), owned=owned)
                return Answer(200, result, warnings=warnings)
            message = f"the server does not allow this method on the requested resource ({method})"
            raise ApiError(405, status_doc(405, "MethodNotAllowed", message, name, kind))
        return Answer(404, status_doc(404, "NotFound", "the server could not find the requested resource"))

    def _scale(self, key: Key, method: str, headers: dict[str, str], body: bytes, manager: str) -> Answer:
        """The `scale` subresource (autoscaling/v1 Scale), what `kubectl scale` reads and patches."""
        if key not in self.store.objects:
            raise _not_found("deployments", key[2])
        current = self.store.objects[key]
        if method == "GET":
            return Answer(200, scale_of(current))
        if method not in ("PUT", "PATCH"):
            raise ApiError(405, status_doc(405, "MethodNotAllowed", f"{method} is not allowed on scale"))
        sent = json.loads(body)
        if method == "PATCH":
            patch = _PATCHES.get(headers.get("content-type", "").split(";")[0].strip())
            if patch is None:
                raise ApiError(415, status_doc(415, "UnsupportedMediaType", "unsupported patch type"))
            sent = patch(scale_of(current), sent)
        replicas = (sent.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            message = (
                f'Scale.autoscaling "{key[2]}" is invalid: spec.replicas: Invalid value: {replicas!r}: '
                "must be greater than or equal to 0"
            )
            raise ApiError(422, status_doc(422, "Invalid", message, key[2], "deployments"))
        wanted = copy.deepcopy(current)
        wanted["spec"]["replicas"] = replicas
        wanted["metadata"]["resourceVersion"] = (sent.get("metadata") or {}).get("resourceVersion") or ""
        owned = {"f:spec": {"f:replicas": {}}}
        return Answer(200, scale_of(self.update(key, wanted, manager, status_only=False, owned=owned)))

    def _list(self, kind: str, namespace: str | None, query: dict[str, str], wants_table: bool) -> Answer:
        selection = Query(
            kind, namespace, parse_labels(query.get("labelSelector", "")), parse_fields(query.get("fieldSelector", ""))
        )
        if query.get("watch") in ("true", "1"):
            rv = query.get("resourceVersion", "")
            initial = query.get("sendInitialEvents") == "true"
            since = None if initial or rv in ("", "0") else int(rv)
            timeout = min(float(query.get("timeoutSeconds") or 1800), 1800.0)
            return Answer(200, watch=WatchRequest(selection, since, initial, timeout))
        page = self.store.list(
            selection,
            limit=int(query.get("limit") or 0),
            token=query.get("continue", ""),
            resource_version=query.get("resourceVersion", ""),
            match=query.get("resourceVersionMatch", ""),
        )
        meta: dict[str, Any] = {"resourceVersion": page.resource_version}
        if page.next_token:
            meta["continue"] = page.next_token
            meta["remainingItemCount"] = page.remaining
        if wants_table:
            return Answer(200, table(kind, page.items, meta))
        api_version, kind_name = KINDS[kind]
        return Answer(
            200, {"kind": f"{kind_name}List", "apiVersion": api_version, "metadata": meta, "items": page.items}
        )

    def create(self, kind: str, namespace: str, body: dict[str, Any], manager: str) -> dict[str, Any]:
        api_version, kind_name = KINDS[kind]
        metadata = body.get("metadata") or {}
        name = metadata.get("name") or ""
        if body.get("kind", kind_name) != kind_name or body.get("apiVersion", api_version) != api_version:
            message = (
                f"the API version in the data ({body.get('apiVersion')}) does not match the expected API "
                f"version ({api_version})"
            )
            raise ApiError(400, status_doc(400, "BadRequest", message))
        if metadata.get("namespace", namespace) != namespace:
            message = "the namespace of the provided object does not match the namespace sent on the request"
            raise ApiError(400, status_doc(400, "BadRequest", message))
        if not name:
            message = f'{kind_name} "" is invalid: metadata.name: Required value: name or generateName is required'
            raise ApiError(422, status_doc(422, "Invalid", message, "", kind))
        if metadata.get("resourceVersion"):
            raise ApiError(
                500, status_doc(500, "InternalError", "resourceVersion should not be set on objects to be created")
            )
        if namespace not in self.namespaces:
            message = f'namespaces "{namespace}" not found'
            raise ApiError(404, status_doc(404, "NotFound", message, namespace, "namespaces"))
        if (kind, namespace, name) in self.store.objects:
            raise ApiError(
                409, status_doc(409, "AlreadyExists", f'{resource(kind)} "{name}" already exists', name, kind)
            )
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = api_version, kind_name
        obj["metadata"] = {k: v for k, v in obj["metadata"].items() if k not in ("uid", "managedFields", "generation")}
        obj["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=timestamp())
        if kind == "deployments":
            obj["metadata"]["generation"] = 1
        obj["metadata"]["managedFields"] = [managed_entry(manager, "Update", api_version, owned_fields(body))]
        obj["status"] = {} if kind == "deployments" else {"loadBalancer": {}}
        default(kind, obj)
        validate(kind, obj, None)
        return self.store.write((kind, namespace, name), obj)

    def update(
        self, key: Key, wanted: dict[str, Any], manager: str, *, status_only: bool, owned: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A replace (or a patch's result): only the writable parts change; `owned`: the fields the
        writer set, for its managed-fields entry (default: every field it sent)."""
        kind, _namespace, name = key
        current = self.store.objects[key]
        metadata = wanted.get("metadata") or {}
        if metadata.get("name", name) != name:
            message = f"the name of the object ({metadata.get('name')}) does not match the name on the URL ({name})"
            raise ApiError(400, status_doc(400, "BadRequest", message))
        if metadata.get("uid") and metadata["uid"] != current["metadata"]["uid"]:
            message = (
                f"Precondition failed: UID in precondition: {metadata['uid']}, "
                f"UID in object meta: {current['metadata']['uid']}"
            )
            raise ApiError(409, status_doc(409, "Conflict", message, name, kind))
        sent_rv = metadata.get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            message = (
                f'Operation cannot be fulfilled on {resource(kind)} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again"
            )
            raise ApiError(409, status_doc(409, "Conflict", message, name, kind))
        obj = copy.deepcopy(current)
        if status_only:
            obj["status"] = copy.deepcopy(wanted.get("status") or {})
            fields = {"f:status": owned_fields({"x": wanted.get("status") or {}}).get("f:x", {})}
        else:
            obj["spec"] = copy.deepcopy(wanted.get("spec") or {})
            for part in ("labels", "annotations", "finalizers", "ownerReferences"):
                if metadata.get(part) is None:
                    obj["metadata"].pop(part, None)
                else:
                    obj["metadata"][part] = copy.deepcopy(metadata[part])
            if kind == "services":
                # Allocated values survive an update that leaves them out (patchAllocatedValues).
                for allocated in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                    if allocated in current["spec"]:
                        obj["spec"].setdefault(allocated, current["spec"][allocated])
            default(kind, obj)
            validate(kind, obj, current)
            if kind == "deployments" and obj["spec"] != current["spec"]:
                obj["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
            fields = owned_fields(wanted)
        if owned is not None:
            fields = owned
        if obj == current:
            return copy.deepcopy(current)  # a no-op write changes nothing, not even the resourceVersion
        subresource = "status" if status_only else None
        # A writer that sends managedFields replaces the server's record with them (an empty list resets it).
        sent = None if status_only else metadata.get("managedFields")
        entries = [
            e
            for e in (current["metadata"].get("managedFields") if sent is None else sent) or []
            if (e.get("manager"), e.get("subresource")) != (manager, subresource)
        ]
        entry = managed_entry(manager, "Update", KINDS[kind][0], fields, subresource)
        obj["metadata"]["managedFields"] = [*entries, entry]
        return self.store.write(key, obj)

    def _delete(self, key: Key, query: dict[str, str], options: dict[str, Any]) -> Answer:
        kind, _namespace, name = key
        current = self.store.objects[key]
        for field_name in ("uid", "resourceVersion"):
            expected = (options.get("preconditions") or {}).get(field_name)
            if expected and expected != current["metadata"].get(field_name):
                message = (
                    f"Precondition failed: {field_name.upper() if field_name == 'uid' else 'ResourceVersion'} in "
                    f"precondition: {expected}, {field_name} in object meta: {current['metadata'].get(field_name)}"
                )
                raise ApiError(409, status_doc(409, "Conflict", message, name, kind))
        policy = query.get("propagationPolicy") or options.get("propagationPolicy") or "Background"
        if policy not in ("Background", "Foreground", "Orphan"):
            message = f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "{policy}"'
            raise ApiError(422, status_doc(422, "Invalid", message))
        if policy != "Background" or current["metadata"].get("deletionTimestamp"):
            # A finalizer runs first: the object stays, marked, and the answer is 202 with it.
            obj = copy.deepcopy(current)
            if not obj["metadata"].get("deletionTimestamp"):
                finalizer = "foregroundDeletion" if policy == "Foreground" else "orphan"
                obj["metadata"]["finalizers"] = [*(obj["metadata"].get("finalizers") or []), finalizer]
                obj["metadata"].update(deletionTimestamp=timestamp(), deletionGracePeriodSeconds=0)
                if kind == "deployments":
                    obj["metadata"]["generation"] = int(obj["metadata"].get("generation", 1)) + 1
                obj = self.store.write(key, obj)
            return Answer(202, obj)
        gone = self.store.remove(key)
        self.controller.forget(key)
        if kind == "services":
            return Answer(200, gone)
        details = {"name": name, "group": "apps", "kind": kind, "uid": gone["metadata"]["uid"]}
        return Answer(
            200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
        )


def _decode(kind: str, document: Any, validation: str) -> tuple[dict[str, Any], list[str]]:
    """The object as the server decodes it: fields its type does not have are dropped, and refused
    under fieldValidation=Strict (400) or reported as warnings under Warn, the default."""
    if not isinstance(document, dict):
        raise ApiError(400, status_doc(400, "BadRequest", "the object is not a JSON object"))
    definition = _DEFINITIONS[kind]
    unknown = k8s_contract.unknown_fields(definition, document) if k8s_contract.is_available() else []
    if not unknown:
        return document, []
    names = [".".join([*(str(p) for p in path), name]) for path, name in unknown]
    if validation == "Strict":
        _api_version, kind_name = KINDS[kind]
        detail = ", ".join(f'unknown field "{n}"' for n in names)
        message = f'{kind_name} in version "v1" cannot be handled as a {kind_name}: strict decoding error: {detail}'
        raise ApiError(400, status_doc(400, "BadRequest", message))
    pruned = copy.deepcopy(document)
    for path, name in sorted(unknown, key=lambda u: -len(u[0])):
        holder: Any = pruned
        for part in path:
            holder = holder[part]
        holder.pop(name, None)
    return pruned, ([] if validation == "Ignore" else [f'unknown field "{n}"' for n in names])


def _not_found(kind: str, name: str) -> ApiError:
    return ApiError(404, status_doc(404, "NotFound", f'{resource(kind)} "{name}" not found', name, kind))
