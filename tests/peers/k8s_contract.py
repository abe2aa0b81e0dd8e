"""Checks the Kubernetes emulator's traffic against the Kubernetes API's own OpenAPI description.

`/work/shared/kubernetes-openapi/swagger.json` (release 1.36) is Swagger 2.0, which openapi-core
does not read, so this goes to its `definitions` with jsonschema directly (they are JSON Schema
draft 4 plus `x-kubernetes-*` extensions). The same shape as `do_contract.check`: one exchange in,
a list of problems out, [] when both the request and the response match.

Three adjustments make the schemas say what the API server really enforces:
- `IntOrString` is declared `type: string` (format int-or-string) but is an int or a string on the
  wire; `Quantity` is a string or a number.
- Every object definition with declared properties rejects unknown ones, as the API server does
  with `fieldValidation=Strict` (and as no real server would ever send them).
- A 202 answer to a DELETE carries the object (with `deletionTimestamp`) while finalizers run, as the
  API server's delete handler does; the document declares `Status` there for Deployments.

The `meta.k8s.io/v1` Table (what `kubectl get` asks for) and discovery's aggregated format are not
in the document; Tables are checked against the small schema below (rows carry
`PartialObjectMetadata`, whose `metadata` is an `ObjectMeta`).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

# The spec lives in shared/ beside the checkout (CI lays a copy there), or where KUBERNETES_OPENAPI says.
SPEC_PATH = Path(
    os.environ.get("KUBERNETES_OPENAPI", Path(__file__).resolve().parents[3] / "shared/kubernetes-openapi/swagger.json")
)
_URI = "urn:kubernetes-openapi"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
STATUS = f"{_META}.Status"
TABLE_MEDIA = "as=Table"
_TABLE = {
    "type": "object",
    "required": ["kind", "apiVersion", "metadata", "columnDefinitions", "rows"],
    "additionalProperties": False,
    "properties": {
        "kind": {"enum": ["Table"]},
        "apiVersion": {"enum": ["meta.k8s.io/v1"]},
        "metadata": {"$ref": f"{_URI}#/definitions/{_META}.ListMeta"},
        "columnDefinitions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "type", "format", "description", "priority"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "type": {"enum": ["integer", "number", "string", "boolean", "date"]},
                    "format": {"type": "string"},
                    "description": {"type": "string"},
                    "priority": {"type": "integer"},
                },
            },
        },
        "rows": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["cells", "object"],
                "additionalProperties": False,
                "properties": {
                    "cells": {"type": "array"},
                    "object": {
                        "type": "object",
                        "required": ["kind", "apiVersion", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "kind": {"enum": ["PartialObjectMetadata"]},
                            "apiVersion": {"enum": ["meta.k8s.io/v1"]},
                            "metadata": {"$ref": f"{_URI}#/definitions/{_META}.ObjectMeta"},
                        },
                    },
                },
            },
        },
    },
}


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    parameters: tuple[dict[str, Any], ...]
    responses: Mapping[str, Any]
    kind: str | None
    """The definition of the object the operation is about (from x-kubernetes-group-version-kind)."""


def is_available() -> bool:
    return SPEC_PATH.is_file()


@functools.cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    definitions = spec["definitions"]
    definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": ["integer", "string"]}
    definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {"type": ["string", "number"]}
    for schema in definitions.values():
        if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    return spec


@functools.cache
def _registry() -> Registry[Any]:
    return Registry().with_resource(_URI, Resource(contents=_spec(), specification=DRAFT4))


@functools.cache
def _validator(definition: str) -> Draft4Validator:
    schema = _TABLE if definition == "Table" else {"$ref": f"{_URI}#/definitions/{definition}"}
    return Draft4Validator(schema, registry=_registry(), format_checker=Draft4Validator.FORMAT_CHECKER)


@functools.cache
def _routes() -> list[tuple[re.Pattern[str], str, dict[str, Any]]]:
    routes = []
    for template, item in _spec()["paths"].items():
        pattern = re.escape(template.rstrip("/"))
        pattern = pattern.replace(re.escape("{path}"), ".*")
        pattern = re.sub(r"\\\{[a-zA-Z]+\\\}", "[^/]+", pattern)
        routes.append((re.compile(f"^{pattern}/?$"), template, item))
    # Literal segments win over parameters (`.../deployments/{name}/status` over `.../{name}`).
    routes.sort(key=lambda r: r[1].count("{"))
    return routes


def operation(method: str, path: str) -> Operation | None:
    spec = _spec()
    for pattern, template, item in _routes():
        if pattern.match(path) and method.lower() in item:
            op = item[method.lower()]
            params = [_resolve(p) for p in (*item.get("parameters", ()), *op.get("parameters", ()))]
            gvk = op.get("x-kubernetes-group-version-kind") or {}
            return Operation(method, template, tuple(params), op.get("responses", {}), _definition(gvk, spec))
    return None


def _resolve(parameter: dict[str, Any]) -> dict[str, Any]:
    ref = parameter.get("$ref")
    if not ref:
        return parameter
    resolved: dict[str, Any] = _spec()["parameters"][ref.rsplit("/", 1)[1]]
    return resolved


def _definition(gvk: Mapping[str, str], spec: dict[str, Any]) -> str | None:
    return _kinds().get((gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))) if gvk else None


@functools.cache
def _kinds() -> dict[tuple[str, str, str], str]:
    return {
        (declared.get("group", ""), declared.get("version", ""), declared.get("kind", "")): name
        for name, schema in _spec()["definitions"].items()
        for declared in schema.get("x-kubernetes-group-version-kind") or ()
    }


def check(
    method: str,
    path: str,
    query: Mapping[str, str],
    request_body: bytes,
    status: int,
    response_body: bytes,
    *,
    content_type: str = "application/json",
) -> list[str]:
    """Problems with one exchange ([] when request and response match the API description)."""
    op = operation(method, path)
    if op is None:
        return [f"request {method} {path}: no such operation in the Kubernetes API"]
    problems = [f"request {method} {path}: {p}" for p in _request_problems(op, query, request_body)]
    where = f"response {status} to {method} {path}"
    try:
        document = json.loads(response_body) if response_body else None
    except ValueError as exc:
        return [*problems, f"{where}: not JSON ({exc})"]
    if status >= 300 or status == 0:
        definition: str | None = STATUS
    elif TABLE_MEDIA in content_type:
        definition = "Table"
    else:
        definition = _response_definition(op, status, document)
        if definition is None:
            return [*problems, f"{where}: status {status} is not a declared answer ({sorted(op.responses)})"]
    if definition and document is not None:
        problems += [f"{where}: {p}" for p in object_problems(definition, document)]
    return problems


def _request_problems(op: Operation, query: Mapping[str, str], body: bytes) -> list[str]:
    problems = []
    # `timeout` is the API server's request timeout, taken on every path and declared on none.
    declared = {"timeout": {"name": "timeout", "type": "string"}}
    declared |= {p["name"]: p for p in op.parameters if p.get("in") == "query"}
    for name, value in query.items():
        parameter = declared.get(name)
        if parameter is None:
            problems.append(f"query parameter {name!r} is not declared")
        elif parameter.get("type") == "integer" and not re.fullmatch(r"-?\d+", value):
            problems.append(f"query parameter {name}={value!r} is not an integer")
        elif parameter.get("type") == "boolean" and value not in ("true", "false", "1", "0"):
            problems.append(f"query parameter {name}={value!r} is not a boolean")
    body_parameter = next((p for p in op.parameters if p.get("in") == "body"), None)
    if body and body_parameter is None:
        problems.append("the operation takes no body")
    if body and body_parameter is not None and op.method != "PATCH":
        # A patch is checked as the object it produces (`object_problems`), which is what the server does.
        try:
            document = json.loads(body)
        except ValueError as exc:
            return [*problems, f"body is not JSON ({exc})"]
        problems += object_problems(body_parameter["schema"]["$ref"].rsplit("/", 1)[1], document)
    elif body_parameter is not None and body_parameter.get("required") and not body and op.method != "DELETE":
        problems.append("the body is required")
    return problems


def _response_definition(op: Operation, status: int, document: Any) -> str | None:
    declared = op.responses.get(str(status))
    if declared is None:
        return None
    deleting = status == 202 and op.method == "DELETE" and op.kind and isinstance(document, dict)
    if deleting and document.get("kind") != "Status":
        return op.kind
    schema = declared.get("schema") or {}
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[1] if ref else ""


def object_problems(definition: str, document: Any) -> list[str]:
    """Where `document` breaks the named definition (e.g. `io.k8s.api.apps.v1.Deployment`)."""
    errors = sorted(_validator(definition).iter_errors(document), key=lambda e: list(e.absolute_path))
    return [_describe(e) for e in errors[:5]]


def unknown_fields(definition: str, document: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """(path of the enclosing object, field name) of every field the definition does not declare."""
    found = []
    for error in _validator(definition).iter_errors(document):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            declared = set((error.schema.get("properties") or {}).keys())
            found += [(tuple(error.absolute_path), name) for name in error.instance if name not in declared]
    return sorted(found, key=lambda f: (len(f[0]), [str(p) for p in f[0]], f[1]))


def _describe(error: ValidationError) -> str:
    error = best_match([error, *(error.context or ())]) or error
    where = ".".join(str(p) for p in error.absolute_path) or "(the document)"
    return f"{where}: {error.message[:300]}"
