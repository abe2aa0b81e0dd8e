"""HTTP attempts: the health endpoint and the critical endpoints, plus the GET the other checks share.

Every attempt opens a fresh `requests.Session` with no adapter retries, so one attempt is one
request on a new connection: a release that cannot accept new connections fails here, and
retrying is the scheduler's decision, never urllib3's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from orchestrator.contract import HealthCheckConfig, HttpCheck
from orchestrator.health.checks.base import DETAIL_BODY_CHARS, Attempt, Check, describe_error
from orchestrator.redaction import mask_url

__all__ = [
    "Answer",
    "endpoint_check",
    "health_check",
    "is_absolute",
    "json_of",
    "request",
    "resolve_url",
    "unreachable",
]


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    reason: str
    text: str
    elapsed_ms: float

    def excerpt(self) -> str:
        """`503 Service Unavailable: <first 200 chars of the body>`, for failure details."""
        body = " ".join(self.text[:DETAIL_BODY_CHARS].split())
        return f"{self.status} {self.reason}".strip() + (f": {body}" if body else " (empty body)")


def is_absolute(endpoint: str) -> bool:
    return endpoint.startswith(("http://", "https://"))


def resolve_url(base_url: str, endpoint: str) -> str:
    """An absolute http(s) URL stays as it is; a path is appended to `base_url`, keeping the base's own path.

    (`urljoin` would drop a base path such as `/app`, so this concatenates.)
    """
    if is_absolute(endpoint):
        return endpoint
    return base_url.rstrip("/") + "/" + endpoint.lstrip("/")


_CHUNK = 8192
_MAX_BODY = 1 << 20
"""Checks look at status, latency and a substring: a megabyte of body is plenty."""


def request(method: str, url: str, timeout_seconds: float) -> Answer:
    """One request on a fresh connection. Raises `requests.RequestException` when nothing usable answers."""
    with requests.Session() as session:
        adapter = HTTPAdapter(max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        started = time.monotonic()
        deadline = started + timeout_seconds
        # requests' timeout bounds each socket read, not the whole answer: a server dribbling a byte
        # at a time would hold the check (and the run) forever, so the body is read against a deadline.
        with session.request(
            method, url, timeout=max(timeout_seconds, 0.001), allow_redirects=False, stream=True
        ) as response:
            body = bytearray()
            for chunk in response.iter_content(_CHUNK):
                body.extend(chunk)
                if len(body) >= _MAX_BODY:
                    break
                if time.monotonic() > deadline:
                    raise requests.Timeout(f"the answer did not finish within {timeout_seconds:g} s")
            text = bytes(body).decode(response.encoding or "utf-8", errors="replace")
        elapsed_ms = (time.monotonic() - started) * 1000.0
        return Answer(response.status_code, response.reason or "", text, elapsed_ms)


def unreachable(url: str, exc: BaseException) -> Attempt:
    """The attempt when no HTTP answer came back: status 0 and what went wrong."""
    return Attempt(False, 0, f"no answer from {mask_url(url)}: {describe_error(exc)}")


def health_check(base_url: str, check: HealthCheckConfig) -> Check:
    """The seed's health check: GET `endpoint` within `timeout_seconds`, passing on `expected_status`."""
    url = resolve_url(base_url, check.endpoint)

    def attempt(timeout_seconds: float) -> Attempt:
        try:
            answer = request("GET", url, timeout_seconds)
        except requests.RequestException as exc:
            return unreachable(url, exc)
        if answer.status == check.expected_status:
            return Attempt(True, answer.status, f"{answer.status} {answer.reason}".strip())
        return Attempt(False, answer.status, f"expected {check.expected_status}, got {answer.excerpt()}")

    label = mask_url(check.endpoint) if is_absolute(check.endpoint) else check.endpoint
    return Check(name="health", endpoint=label, timeout_seconds=check.timeout_seconds, attempt=attempt)


def endpoint_check(base_url: str, check: HttpCheck) -> Check:
    """A critical endpoint: status, optional body substring, optional latency bound."""
    url = resolve_url(base_url, check.url or check.path or "/")

    def attempt(timeout_seconds: float) -> Attempt:
        try:
            answer = request(check.method, url, timeout_seconds)
        except requests.RequestException as exc:
            return unreachable(url, exc)
        problem = _endpoint_problem(check, answer)
        if problem:
            return Attempt(False, answer.status, problem)
        return Attempt(True, answer.status, f"{answer.status} {answer.reason} in {answer.elapsed_ms:.0f} ms".strip())

    return Check(
        name=f"endpoint '{check.name}'",
        endpoint=f"endpoint:{check.name}",
        timeout_seconds=check.timeout_seconds,
        attempt=attempt,
    )


def _endpoint_problem(check: HttpCheck, answer: Answer) -> str | None:
    where = f"{check.method} {mask_url(check.url) if check.url else check.path}"
    if answer.status != check.expected_status:
        return f"{where}: expected {check.expected_status}, got {answer.excerpt()}"
    if check.body_contains is not None and check.body_contains not in answer.text:
        return f"{where}: body does not contain {check.body_contains!r}; got {answer.excerpt()}"
    if check.max_latency_ms is not None and answer.elapsed_ms > check.max_latency_ms:
        return f"{where}: answered in {answer.elapsed_ms:.0f} ms, over max_latency_ms {check.max_latency_ms:g}"
    return None


def json_of(answer: Answer) -> Any:
    """The body as JSON. Raises ValueError naming what came back when it is not JSON."""
    try:
        return json.loads(answer.text)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc}); got {answer.excerpt()}") from None
