"""A deployment's build and deploy logs, in the order they happened, bounded and redacted.

App Platform's aggregate logs endpoint answers with links, not text: `historic_urls` (archived
files, for finished deployments) and `live_url` (a websocket stream for running ones). We read the
archived files; a stream cannot be drained without blocking, so it is only named. A deployment
that never reached a step (a build that failed has no deploy) has no logs for it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from orchestrator.platform_outputs import PlatformOutputs
from orchestrator.redaction import redact

from .api import AppsApi

__all__ = ["KINDS", "MAX_BYTES", "TAIL_LINES", "DeploymentLogs", "fetch_logs", "outputs_of"]

log = logging.getLogger(__name__)
KINDS = ("BUILD", "DEPLOY")
"""In the order they happen."""
TAIL_LINES = 30
MAX_BYTES = 64 * 1024
"""Per kind: the newest part is kept (an output, a summary and the job log stay readable)."""
_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class DeploymentLogs:
    deployment_id: str
    build: tuple[str, ...] = ()
    deploy: tuple[str, ...] = ()

    def tail(self, lines: int = TAIL_LINES) -> tuple[str, ...]:
        """The last `lines` lines, build before deploy, each tagged with its kind."""
        tagged = [f"[BUILD] {line}" for line in self.build] + [f"[DEPLOY] {line}" for line in self.deploy]
        return tuple(tagged[-lines:])

    def text(self, kind: str) -> str:
        return "\n".join(self.build if kind == "BUILD" else self.deploy)


def fetch_logs(api: AppsApi, app_id: str, deployment_id: str, *, verify: str | bool) -> DeploymentLogs:
    """BUILD then DEPLOY logs of one deployment. Never raises: logs are a courtesy, and on a path
    that is already failing they must not hide the original error."""
    found: dict[str, tuple[str, ...]] = {}
    for kind in KINDS:
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
            log.info("no %s logs for deployment %s: %s", kind, deployment_id, exc)
            continue
        found[kind] = tuple(_read_archives(links or {}, verify))
    return DeploymentLogs(deployment_id, build=found.get("BUILD", ()), deploy=found.get("DEPLOY", ()))


def _read_archives(links: dict[str, object], verify: str | bool) -> list[str]:
    chunks: list[bytes] = []
    urls = links.get("historic_urls") or []
    for url in urls if isinstance(urls, list) else []:
        try:
            response = requests.get(str(url), timeout=_TIMEOUT, verify=verify)
            response.raise_for_status()
        except requests.RequestException as exc:
            # The archive links are presigned: their query strings are credentials, never to be printed.
            said = redact(str(exc)).replace(str(url), _without_query(str(url)))
            log.warning("could not download a deployment log archive: %s", said)
            continue
        chunks.append(response.content)
    window = b"".join(chunks)
    cut = window[-MAX_BYTES:]
    if len(window) > MAX_BYTES:
        # Start at a line boundary: a secret split by the cut would no longer match its mask.
        cut = cut[cut.find(b"\n") + 1 :] if b"\n" in cut else b""
    text = cut.decode("utf-8", "replace")
    lines = [redact(line) for line in text.splitlines() if line.strip()]
    if not lines and links.get("live_url"):
        lines.append(f"(logs are still streaming at {_without_query(str(links['live_url']))}; no archive yet)")
    return lines


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="", fragment="")) + ("?…" if parts.query else "")


def outputs_of(
    logs: DeploymentLogs | None, app: dict[str, Any] | None, *, failed: bool, print_kinds: Mapping[str, bool]
) -> PlatformOutputs | None:
    """The run's `app`, `build_logs` and `deploy_logs`, and which logs to print (all of a failed
    deployment's; a successful one's kinds as `print_kinds` asks)."""
    if logs is None and app is None:
        return None
    printed = tuple(
        (f"App Platform {kind.lower()} logs of deployment {logs.deployment_id}", logs.text(kind))
        for kind in KINDS
        if logs is not None and (failed or print_kinds.get(kind))
    )
    return PlatformOutputs(
        app=app,
        build_logs=logs.text("BUILD") if logs else "",
        deploy_logs=logs.text("DEPLOY") if logs else "",
        printed=printed,
    )
