"""One exchange checked against an OpenAPI 3 description with openapi-core, both ways.

The shared half of `do_contract` (DigitalOcean) and `github_contract` (GitHub): a peer hands each
request it answered and its answer to `check`, which returns the problems ([] when both match).
Descriptions are loaded once per process; their top-level documents need not pass the strict spec
validator (only the operations are used).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["OpenApiContract", "reason"]


class OpenApiContract:
    def __init__(
        self,
        load: Callable[[], Any],
        host: str,
        *,
        request_headers: Mapping[str, str] | None = None,
        undeclared_error: Callable[[int, Any], list[str]] | None = None,
    ) -> None:
        """`load` returns a `jsonschema_path.SchemaPath` of the description; `undeclared_error`
        checks an error answer whose status the operation does not declare (None: a problem)."""
        self._load = functools.cache(load)
        self._host = host
        self._headers = dict(request_headers or {})
        self._undeclared_error = undeclared_error

    @functools.cached_property
    def _api(self) -> Any:
        from openapi_core import Config, OpenAPI

        return OpenAPI(self._load(), config=Config(spec_validator_cls=None))

    def check(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        request_body: bytes,
        status: int,
        response_body: bytes,
        *,
        response_headers: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Problems with one exchange ([] when request and response match the description)."""
        from openapi_core.testing import MockRequest, MockResponse

        request = MockRequest(
            self._host,
            method.lower(),
            path,
            args=dict(query),
            headers=self._headers,
            data=request_body or None,
            content_type="application/json",
        )
        problems: list[str] = []
        try:
            self._api.validate_request(request)
        except Exception as exc:
            problems.append(f"request {method} {path}: {reason(exc)}")
        try:
            document = json.loads(response_body) if response_body else None
        except ValueError as exc:
            return [*problems, f"response {status} to {method} {path}: not JSON ({exc})"]
        response = MockResponse(
            response_body, status_code=status, content_type="application/json", headers=dict(response_headers or {})
        )
        try:
            self._api.validate_response(request, response)
        except Exception as exc:
            text = reason(exc)
            if self._undeclared_error is not None and status >= 400 and "Unknown response http status" in text:
                problems += [
                    f"response {status} to {method} {path}: {p}" for p in self._undeclared_error(status, document)
                ]
            else:
                problems.append(f"response {status} to {method} {path}: {text}")
        return problems


def reason(exc: BaseException) -> str:
    details = [str(exc)]
    cause = exc.__cause__
    while cause is not None:
        details.append(str(cause))
        cause = cause.__cause__
    return " <- ".join(details)[:800]
