"""The workflow's event payload (`GITHUB_EVENT_PATH`), read as bounded, plain JSON.

The payload is someone else's file: it may be missing, huge, deeply nested, not JSON, or
(on a laptop) a FIFO. None of that may hang or crash a run; the few facts read from it
(the pull request number, the head sha) are checked for type and range here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.config_file import loads_bounded_json
from orchestrator.errors import ConfigError
from orchestrator.safe_files import read_regular

__all__ = ["MAX_EVENT_BYTES", "MAX_PR_NUMBER", "Event", "read_event", "validated_commit"]

MAX_EVENT_BYTES = 32 << 20
MAX_PR_NUMBER = 2**31 - 1
_EVENT_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Event:
    """The payload's facts we use; `problem` says why the payload could not be read, if it could not."""

    pr_number: int | None = None
    head_sha: str | None = None
    problem: str | None = None


def read_event(env: Mapping[str, str]) -> Event:
    """The event facts, never raising: an unreadable payload gives an Event with `problem` set."""
    event_path = env.get("GITHUB_EVENT_PATH")
    if not event_path:
        return Event()
    try:
        data = read_regular(Path(event_path), field="GITHUB_EVENT_PATH", limit=MAX_EVENT_BYTES)
        payload = loads_bounded_json(data.decode("utf-8"), f"GITHUB_EVENT_PATH: {event_path}", max_depth=_EVENT_DEPTH)
    except ConfigError as exc:
        return Event(problem=exc.problems[0])
    except UnicodeDecodeError:
        return Event(problem=f"GITHUB_EVENT_PATH: {event_path} is not UTF-8")
    if not isinstance(payload, dict):
        return Event(problem=f"GITHUB_EVENT_PATH: {event_path} does not hold a JSON object")
    return Event(pr_number=_pr_number(payload), head_sha=_head_sha(payload))


_COMMIT = ("0123456789abcdef", (40, 64))


def validated_commit(env: Mapping[str, str], *, preview: bool) -> str | None:
    """The commit this run validated and deploys from git: the pull request's head in a preview
    (GITHUB_SHA is then a merge commit App Platform cannot build), else GITHUB_SHA. None outside
    Actions. Raises ConfigError for a value that is not a full sha."""
    sha = (read_event(env).head_sha if preview else None) or env.get("GITHUB_SHA") or None
    if sha is None:
        return None
    sha = sha.strip().lower()
    if len(sha) not in _COMMIT[1] or any(c not in _COMMIT[0] for c in sha):
        raise ConfigError(f"GITHUB_SHA: {sha!r} should be a full commit sha (40 hex digits), as Actions sets it")
    return sha


def _pr_number(payload: Mapping[str, Any]) -> int | None:
    number = payload.get("number")
    if number is None:
        number = _mapping(payload.get("pull_request")).get("number")
    if not isinstance(number, int) or isinstance(number, bool):
        return None
    return number if 0 < number <= MAX_PR_NUMBER else None


def _head_sha(payload: Mapping[str, Any]) -> str | None:
    sha = _mapping(_mapping(payload.get("pull_request")).get("head")).get("sha")
    return sha if isinstance(sha, str) and sha and sha.isascii() and sha.isalnum() and len(sha) <= 64 else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
