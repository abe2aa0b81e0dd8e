"""The parts both Kubernetes adapters share: one app in one namespace, its Service, waiting for
rollouts, and optimistic-concurrency updates that survive a concurrent writer.

Updates are read-modify-write with the object's `resourceVersion`: when someone else (a GitOps
controller, a person with kubectl, an HPA) changed the object in between, the API server answers 409
Conflict and we read it again and re-apply our change, a bounded number of times. We never
overwrite a change we did not see.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.errors import DeployError

from .api import PLATFORM, ConflictError, KubeApi
from .manifest import VERSION_LABEL, RunInfo, for_update, label_value_problem, proxy_path, service_port
from .proxy import ServiceProxy
from .rollout import Backoff, wait_for_rollout

__all__ = ["Cluster", "Timing"]

log = logging.getLogger(__name__)

DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
_ANONYMOUS = RunInfo()


@dataclass(frozen=True, slots=True)
class Timing:
    progress_deadline_seconds: int = DEFAULT_PROGRESS_DEADLINE_SECONDS
    """Written into the Deployments we touch (`spec.progressDeadlineSeconds`); the controller then
    reports ProgressDeadlineExceeded, which fails the rollout."""
    grace_seconds: float = 30.0
    """Our own wall-clock deadline is the progress deadline plus this, for a silent controller."""
    poll: Backoff = field(default_factory=Backoff)
    conflict_retries: int = 5


_TIMING = Timing()


class Cluster:
    """The app `app` in `api.namespace`; the Service of the same name routes its traffic."""

    def __init__(
        self,
        api: KubeApi,
        proxy: ServiceProxy,
        *,
        app: str,
        container: str | None = None,
        run: RunInfo = _ANONYMOUS,
        timing: Timing = _TIMING,
        public_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api = api
        self.proxy = proxy
        self.app = app
        self.container = container
        self.run = run
        self.timing = timing
        self.public_url = public_url
        self._clock = clock
        self._sleep = sleep

    @property
    def namespace(self) -> str:
        return self.api.namespace

    def main_service(self, operation: str) -> dict[str, Any]:
        service = self.api.get_service(self.app)
        if service is None:
            raise DeployError(
                f"{operation}: Service {self.app} not found in namespace {self.namespace}; create a Service named "
                f"like the Deployment, selecting its pods (e.g. app.kubernetes.io/name={self.app})",
                platform=PLATFORM,
                operation=operation,
            )
        return service

    def require_version_label(self, version: str, operation: str) -> None:
        """Refuse, before anything is written, a version the API server would refuse as a label."""
        problem = label_value_problem(version)
        if problem is not None:
            raise DeployError(
                f"{operation}: version {version!r} cannot be the Kubernetes label {VERSION_LABEL} ({problem}); "
                "deploy it under a version that can, such as a short commit sha",
                platform=PLATFORM,
                operation=operation,
            )

    def service_url(self, service: dict[str, Any]) -> str:
        """The Service's pods through the API server's service proxy (via our local authenticated proxy)."""
        name = service["metadata"]["name"]
        try:
            port = service_port(service)
        except ValueError:
            raise DeployError(
                f"Service {name} in namespace {self.namespace} has no ports; add the app's port to it",
                platform=PLATFORM,
                operation="service url",
            ) from None
        return self.proxy.url + proxy_path(self.namespace, name, port)

    def live_url(self) -> str:
        """The configured public URL, else the main Service through the API server's service proxy."""
        return self.public_url or self.service_url(self.main_service("live url"))

    def wait(self, name: str) -> dict[str, Any]:
        """Wait for Deployment `name`'s rollout. Raises DeployError naming it and the failed condition."""
        return wait_for_rollout(
            lambda: self.api.get_deployment(name),
            name=name,
            namespace=self.namespace,
            deadline_seconds=self.timing.progress_deadline_seconds + self.timing.grace_seconds,
            backoff=self.timing.poll,
            clock=self._clock,
            sleep=self._sleep,
        )

    def update_service(self, name: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        return self._update(
            f"update service {name}", lambda: self.api.get_service(name), change, self.api.replace_service
        )

    def update_deployment(self, name: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        return self._update(
            f"update deployment {name}", lambda: self.api.get_deployment(name), change, self.api.replace_deployment
        )

    def _update(
        self,
        operation: str,
        read: Callable[[], dict[str, Any] | None],
        change: Callable[[dict[str, Any]], dict[str, Any]],
        write: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        for attempt in range(1, self.timing.conflict_retries + 2):
            current = read()
            if current is None:
                raise DeployError(
                    f"{operation}: it does not exist in namespace {self.namespace}",
                    platform=PLATFORM,
                    operation=operation,
                )
            wanted = change(current)
            if for_update(wanted) == for_update(current):
                return current  # nothing of ours to change (status and managed fields are the server's)
            try:
                return write(wanted)
            except ConflictError as exc:
                if exc.reason != "Conflict" or attempt > self.timing.conflict_retries:
                    raise
                log.info("%s: changed by someone else meanwhile (%s); reading it again", operation, exc)
        raise AssertionError("unreachable: the loop returns or raises")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
