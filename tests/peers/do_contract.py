"""Checks the DigitalOcean simulator's traffic against DigitalOcean's own OpenAPI description.

The whole public spec (`/work/shared/digitalocean-openapi`, many files joined by relative $refs)
loads in well under a second; it is loaded once per process. Its top-level document does not pass
the strict spec validator (tag descriptions are $refs), so only the operations are used.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

SPEC_PATH = Path(
    os.environ.get(
        "DIGITALOCEAN_OPENAPI",
        "/work/shared/digitalocean-openapi/specification/DigitalOcean-public.v2.yaml",
    )
)
_HOST = "https://api.digitalocean.com"


@functools.cache
def _openapi() -> Any:
    from jsonschema_path import SchemaPath
    from openapi_core import Config, OpenAPI

    return OpenAPI(SchemaPath.from_file_path(str(SPEC_PATH)), config=Config(spec_validator_cls=None))


def is_available() -> bool:
    return SPEC_PATH.is_file()


def check(
    method: str,
    path: str,
    query: dict[str, str],
    request_body: bytes,
    status: int,
    response_body: bytes,
) -> list[str]:
    """Problems with one exchange ([] when request and response match the spec)."""
    from openapi_core.testing import MockRequest, MockResponse

    api = _openapi()
    request = MockRequest(
        _HOST,
        method,
        path,
        args=query,
        headers={"Authorization": "Bearer checked-elsewhere"},
        data=request_body or None,
        content_type="application/json",
    )
    problems: list[str] = []
    try:
        api.validate_request(request)
    except Exception as exc:
        problems.append(f"request {method} {path}: {_reason(exc)}")
    response = MockResponse(response_body, status_code=status, content_type="application/json")
    try:
        if response_body:
            json.loads(response_body)
        api.validate_response(request, response)
    except Exception as exc:
        problems.append(f"response {status} to {method} {path}: {_reason(exc)}")
    return problems


def _reason(exc: Exception) -> str:
    details = [str(exc)]
    cause = exc.__cause__
    while cause is not None:
        details.append(str(cause))
        cause = cause.__cause__
    return " <- ".join(details)[:800]
