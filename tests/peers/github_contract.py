"""Checks the GitHub API peer's traffic against GitHub's own REST description, both ways.

The description is the npm package `@octokit/openapi` (GitHub's official OpenAPI document with
Octokit's extensions), pinned in `.ci/install.sh`, which unpacks `api.github.com.json` into the
git-ignored `.cache/octokit-openapi/`. The whole document is 13 MB and takes openapi-core tens of
seconds to prepare, so only the operations the peer serves are kept, with every component they
reference (a closure over `$ref`): the same schemas, loaded in well under a second.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.peers.openapi_contract import OpenApiContract

OCTOKIT_OPENAPI_VERSION = "23.0.2"
SPEC_PATH = Path(
    os.environ.get(
        "GITHUB_OPENAPI",
        str(Path(__file__).resolve().parents[2] / ".cache" / "octokit-openapi" / "api.github.com.json"),
    )
)
MISSING = (
    f"GitHub's REST description is missing at {SPEC_PATH}: run `bash .ci/install.sh test` (it unpacks "
    f"api.github.com.json from the npm package @octokit/openapi@{OCTOKIT_OPENAPI_VERSION}), or point "
    "GITHUB_OPENAPI at that file"
)
SERVED = (
    "/repos/{owner}/{repo}/deployments",
    "/repos/{owner}/{repo}/deployments/{deployment_id}",
    "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses",
    "/repos/{owner}/{repo}/issues/{issue_number}/comments",
    "/repos/{owner}/{repo}/issues/comments/{comment_id}",
)


def is_available() -> bool:
    """The pinned version is unpacked (install.sh writes VERSION beside the document)."""
    version = SPEC_PATH.parent / "VERSION"
    pinned = "GITHUB_OPENAPI" in os.environ or (
        version.is_file() and version.read_text().strip() == OCTOKIT_OPENAPI_VERSION
    )
    return SPEC_PATH.is_file() and pinned


@functools.cache
def _document() -> dict[str, Any]:
    full = json.loads(SPEC_PATH.read_text())
    paths = {p: full["paths"][p] for p in SERVED}
    # Errors no operation declares are answered in the `basic-error` shape.
    components: dict[str, dict[str, Any]] = {"schemas": {"basic-error": full["components"]["schemas"]["basic-error"]}}
    pending = [paths, components["schemas"]["basic-error"]]
    while pending:
        for ref in _refs(pending.pop()):
            _, section, name = ref.lstrip("#/").split("/", 2)
            if name not in components.setdefault(section, {}):
                components[section][name] = full["components"][section][name]
                pending.append(components[section][name])
    return {"openapi": full["openapi"], "info": full["info"], "paths": paths, "components": components}


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def _load() -> Any:
    from jsonschema_path import SchemaPath

    return SchemaPath.from_dict(_document())


def _basic_error(status: int, document: Any) -> list[str]:
    """GitHub answers an error no operation declares (401, 403, 5xx) with its `basic-error` shape."""
    from jsonschema import Draft202012Validator

    schema = _document()["components"]["schemas"]["basic-error"]
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
        for e in Draft202012Validator(schema).iter_errors(document)
    ]


_CONTRACT = OpenApiContract(_load, "https://api.github.com", undeclared_error=_basic_error)


def check(
    method: str,
    path: str,
    query: Mapping[str, str],
    request_body: bytes,
    status: int,
    response_body: bytes,
    *,
    response_headers: Mapping[str, str] | None = None,
) -> list[str]:
    """Problems with one exchange ([] when request and response match GitHub's description)."""
    return _CONTRACT.check(method, path, query, request_body, status, response_body, response_headers=response_headers)


def validation_problems(method: str, path: str, body: bytes) -> list[str]:
    """What is wrong with a request body (as GitHub's 422 would say), [] when it is valid."""
    return [p for p in _CONTRACT.check(method, path, {}, body, 200, b"") if p.startswith("request ")]
