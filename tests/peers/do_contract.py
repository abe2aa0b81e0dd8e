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

    return SchemaPath.from_file_path(str(SPEC_PATH))


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
