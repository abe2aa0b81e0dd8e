"""Failures the GitHub API peer can be told to answer with, GitHub's own among them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.peers.github_shapes import error

__all__ = ["SECONDARY_RATE_LIMIT", "Fault", "rate_limited"]

SECONDARY_RATE_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID."
)


@dataclass
class Fault:
    method: str
    path: str
    """A regular expression the request path must match in full."""
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=lambda: {"message": "Server Error"})
    after: bool = False
    """Handle the request for real first, then answer with the fault (the change stays made)."""
    drop: bool = False
    """Close the connection without answering."""
    times: int = 1


def rate_limited(method: str, path: str, *, retry_after: int) -> Fault:
    """GitHub's secondary rate limit: 403 with Retry-After."""
    return Fault(
        method,
        path,
        status=403,
        headers={"Retry-After": str(retry_after), "x-ratelimit-remaining": "4999"},
        body=error(SECONDARY_RATE_LIMIT, "/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"),
    )
