"""Failures the GitHub API peer can be told to answer with, GitHub's own among them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tests.peers import github_shapes
from tests.peers.github_shapes import error

__all__ = ["SECONDARY_RATE_LIMIT", "Fault", "RateLimits", "rate_limited"]

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


@dataclass
class RateLimits:
    """GitHub's two limits: the primary one (`limit` requests an hour, then 403 with
    `x-ratelimit-remaining: 0` until `reset`) and, when `secondary` is (writes, seconds), the
    secondary one on content creation (403 with Retry-After past it)."""

    limit: int
    remaining: int = -1
    reset: int = 0
    secondary: tuple[int, float] | None = None
    writes: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.remaining = self.limit if self.remaining < 0 else self.remaining
        self.reset = self.reset or github_shapes.next_reset()

    def headers(self) -> dict[str, str]:
        return github_shapes.rate_headers(self.limit, self.remaining, self.reset)

    def charge(self, method: str) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """Count one request; the refusal (status, body, headers) when a limit is reached."""
        if time.time() >= self.reset:
            self.remaining, self.reset = self.limit, github_shapes.next_reset()
        if self.remaining <= 0:
            return 403, error("API rate limit exceeded for installation.", "/overview/rate-limits-for-the-rest-api"), {}
        self.remaining -= 1
        if method == "GET" or self.secondary is None:
            return None
        count, window = self.secondary
        now = time.monotonic()
        self.writes = [t for t in self.writes if now - t < window]
        if len(self.writes) >= count:
            wait = max(1, int(self.writes[0] + window - now + 0.999))
            return (
                403,
                error(SECONDARY_RATE_LIMIT, "/overview/rate-limits-for-the-rest-api"),
                {"Retry-After": str(wait)},
            )
        self.writes.append(now)
        return None
