"""Checks the DigitalOcean simulator's traffic against DigitalOcean's own OpenAPI description.

The whole public spec (`/work/shared/digitalocean-openapi`, many files joined by relative $refs)
loads in well under a second; it is loaded once per process. Its top-level document does not pass
the strict spec validator (tag descriptions are $refs), so only the operations are used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import yaml
from jsonschema_path.handlers.utils import uri_to_path

from tests.peers.openapi_contract import OpenApiContract

# The spec lives in shared/ beside the checkout (CI lays a copy there), or where DIGITALOCEAN_OPENAPI says.
SPEC_PATH = Path(
    os.environ.get(
        "DIGITALOCEAN_OPENAPI",
        Path(__file__).resolve().parents[3] / "shared/digitalocean-openapi/specification/DigitalOcean-public.v2.yaml",
    )
)


def _load() -> Any:
    from jsonschema_path import SchemaPath
    from jsonschema_path.handlers import default_handlers
    from jsonschema_path.handlers.file import FilePathHandler
    from jsonschema_path.readers import FilePathReader

    class InliningHandler(FilePathHandler):
        def __call__(self, uri: str) -> Any:
            return _inline_property_refs(super().__call__(uri), uri)

    data, base_uri = FilePathReader(str(SPEC_PATH)).read()
    return SchemaPath.from_dict(data, base_uri=base_uri, handlers={**default_handlers, "file": InliningHandler()})


def _inline_property_refs(node: Any, uri: str) -> Any:
    """The spec writes some objects' properties as `properties: {$ref: attributes.yml#/name}` (a map
    of properties kept in another file, e.g. the load balancer's `droplet_ids`). That is not JSON
    Schema (`referencing` takes `$ref` for a property named so and fails), so the map is inlined."""
    if isinstance(node, list):
        return [_inline_property_refs(item, uri) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict) and list(value) == ["$ref"]:
            target, _, pointer = urljoin(uri, value["$ref"]).partition("#/")
            with open(uri_to_path(target), encoding="utf-8") as stream:
                document = yaml.safe_load(stream)
            for part in pointer.split("/"):
                document = document[part]
            value = _absolute_refs(document, target)
        out[key] = _inline_property_refs(value, uri)
    return out


_CONTRACT = OpenApiContract(
    _load, "https://api.digitalocean.com", request_headers={"Authorization": "Bearer checked-elsewhere"}
)


def is_available() -> bool:
    return SPEC_PATH.is_file()


def check(
    method: str, path: str, query: Mapping[str, str], request_body: bytes, status: int, response_body: bytes
) -> list[str]:
    """Problems with one exchange ([] when request and response match the spec)."""
    return _CONTRACT.check(method, path, query, request_body, status, response_body)


def _absolute_refs(node: Any, base: str) -> Any:
    """`node` taken out of the file `base`, its own `$ref`s made absolute so they still resolve."""
    if isinstance(node, list):
        return [_absolute_refs(item, base) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        k: urljoin(base, v) if k == "$ref" and isinstance(v, str) else _absolute_refs(v, base) for k, v in node.items()
    }
