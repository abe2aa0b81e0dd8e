"""A failed deployment's logs, tail only, for the error message and the step summary.

App Platform's aggregate logs endpoint answers with links, not text: `historic_urls` (archived
files, for finished deployments) and `live_url` (a websocket stream for running ones). We read the
archived files; a stream cannot be drained without blocking, so it is only named.
"""

from __future__ import annotations

import logging

import requests

from orchestrator.redaction import redact

from .api import AppsApi

__all__ = ["TAIL_LINES", "fetch_log_tail"]

log = logging.getLogger(__name__)
TAIL_LINES = 30
_MAX_BYTES = 256 * 1024
_TIMEOUT = 10.0


def fetch_log_tail(
    api: AppsApi,
    app_id: str,
    deployment_id: str,
    *,
    verify: str | bool,
    kinds: tuple[str, ...] = ("DEPLOY", "BUILD"),
) -> tuple[str, ...]:
    """The last `TAIL_LINES` lines of the first log kind that has any. Never raises: logs are a
    courtesy on a path that is already failing, and must not hide the original error."""
    for kind in kinds:
        try:
            links = api.read(
                f"get {kind.lower()} logs",
                api.apps.get_logs_aggregate,
                app_id,
                deployment_id,
                follow=False,
                type=kind,
            )
        except Exception as exc:
            log.warning("could not read the %s logs of deployment %s: %s", kind, deployment_id, exc)
            continue
        lines = _read_archives(links or {}, verify)
        if lines:
            return tuple(f"[{kind}] {line}" for line in lines[-TAIL_LINES:])
    return ()


def _read_archives(links: dict[str, object], verify: str | bool) -> list[str]:
    lines: list[str] = []
    urls = links.get("historic_urls") or []
    for url in urls if isinstance(urls, list) else []:
        try:
            response = requests.get(str(url), timeout=_TIMEOUT, verify=verify)
            response.raise_for_status()
        except requests.RequestException as exc:
            log.warning("could not download a deployment log archive: %s", redact(str(exc)))
            continue
        text = response.content[-_MAX_BYTES:].decode("utf-8", "replace")
        lines.extend(redact(line) for line in text.splitlines() if line.strip())
    if not lines and links.get("live_url"):
        lines.append(f"(logs are still streaming at {links['live_url']}; no archive yet)")
    return lines
