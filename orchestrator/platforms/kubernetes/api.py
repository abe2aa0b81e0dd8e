"""The Kubernetes API as we call it: the official client underneath, our retries and errors on top.

Responses are read as plain JSON documents (`_preload_content=False`), in the API's own field
names, so `manifest.py` can copy a live pod template field for field without the client's model
round trip dropping fields it does not know.

Retries (`orchestrator.http_retry`, bounded): 429 (honouring Retry-After up to a cap), 5xx, and connection failures
(refused, reset, timeout). Creating is safe to re-send here, unlike DigitalOcean's POSTs: object
names are unique, so a create that went through the first time answers 409 AlreadyExists the
second time, and callers treat that as "it exists" and read it. 401/403 are never retried.

Every failure leaves as `DeployError(platform="kubernetes", operation=...)` naming the operation,
the HTTP status, and the API server's own `Status.message`. The token is never part of a message:
it lives in the client's configuration only, and `redact()` masks it as a second defence.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from orchestrator import http_retry
from orchestrator.errors import DeployError
from orchestrator.http_retry import TransientError, call_with_retries, rate_limited
from orchestrator.redaction import redact

__all__ = ["PLATFORM", "ConflictError", "KubeApi", "NotFoundError", "RetryPolicy"]

PLATFORM = "kubernetes"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy(http_retry.RetryPolicy):
    """How hard one API call tries: 3 retries with backoff from 0.5 s up to 8 s."""

    max_retry_after: float | None = 30.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0


class NotFoundError(DeployError):
    """The object does not exist (HTTP 404)."""


class ConflictError(DeployError):
    """HTTP 409: `reason` is AlreadyExists (create) or Conflict (stale resourceVersion on update)."""

    def __init__(self, message: str, *, operation: str, reason: str) -> None:
        super().__init__(message, platform=PLATFORM, operation=operation)
        self.reason = reason


class KubeApi:
    """Deployments and Services of one namespace. Thread-compatible, not thread-safe."""

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        *,
        credential: str,
        policy: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = api_client
        self.namespace = namespace
        self.policy = policy
        self._credential = credential
        """Where the credentials came from, for the 401 message (the env var's name, never its value)."""
        self._sleep = sleep
        self._apps = k8s_client.AppsV1Api(api_client)
        self._core = k8s_client.CoreV1Api(api_client)

    @property
    def host(self) -> str:
        return str(self.client.configuration.host).rstrip("/")

    # --- Deployments ----------------------------------------------------------------------------

    def get_deployment(self, name: str) -> dict[str, Any] | None:
        """The Deployment, or None when it does not exist."""
        return self._get(f"get deployment {name}", self._apps.read_namespaced_deployment, name)

    def list_deployments(self, label_selector: str) -> list[dict[str, Any]]:
        body = self._call(
            "list deployments",
            self._apps.list_namespaced_deployment,
            self.namespace,
            label_selector=label_selector,
        )
        return list(body.get("items") or [])

    def create_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        """Raises ConflictError(reason="AlreadyExists") when the name is taken."""
        name = body["metadata"]["name"]
        return self._call(f"create deployment {name}", self._apps.create_namespaced_deployment, self.namespace, body)

    def replace_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        """Raises ConflictError(reason="Conflict") when `metadata.resourceVersion` is stale."""
        name = body["metadata"]["name"]
        return self._call(
            f"replace deployment {name}", self._apps.replace_namespaced_deployment, name, self.namespace, body
        )

    def scale_deployment(
        self, name: str, replicas: int, annotations: dict[str, str | None] | None = None
    ) -> dict[str, Any]:
        """A merge patch of `spec.replicas` (and annotations; None removes one): no read-modify-write,
        so nothing to conflict with."""
        patch: dict[str, Any] = {"spec": {"replicas": replicas}}
        if annotations:
            patch["metadata"] = {"annotations": annotations}
        return self._call(
            f"scale deployment {name} to {replicas}",
            self._apps.patch_namespaced_deployment,
            name,
            self.namespace,
            patch,
            _content_type=MERGE_PATCH,
        )

    def delete_deployment(self, name: str) -> bool:
        """Delete it (its ReplicaSets and pods go in the background). False when it was already gone."""
        return self._delete(f"delete deployment {name}", self._apps.delete_namespaced_deployment, name)

    # --- Services -------------------------------------------------------------------------------

    def get_service(self, name: str) -> dict[str, Any] | None:
        return self._get(f"get service {name}", self._core.read_namespaced_service, name)

    def create_service(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        return self._call(f"create service {name}", self._core.create_namespaced_service, self.namespace, body)

    def replace_service(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        return self._call(f"replace service {name}", self._core.replace_namespaced_service, name, self.namespace, body)

    def delete_service(self, name: str) -> bool:
        return self._delete(f"delete service {name}", self._core.delete_namespaced_service, name)

    # --- internals ------------------------------------------------------------------------------

    def _get(self, operation: str, call: Callable[..., Any], name: str) -> dict[str, Any] | None:
        try:
            return self._call(operation, call, name, self.namespace)
        except NotFoundError:
            return None

    def _delete(self, operation: str, call: Callable[..., Any], name: str) -> bool:
        try:
            self._call(operation, call, name, self.namespace, propagation_policy="Background")
        except NotFoundError:
            return False
        return True

    def _call(self, operation: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        def exhausted(exc: TransientError, attempts: int) -> DeployError:
            return DeployError(
                f"{operation} in namespace {self.namespace}: {exc.detail}, still failing after "
                f"{attempts} attempts; the API server at {self.host} may be overloaded or "
                "unreachable, run again later",
                platform=PLATFORM,
                operation=operation,
            )

        return call_with_retries(
            operation,
            lambda: self._once(operation, call, args, kwargs),
            self.policy,
            sleep=self._sleep,
            on_exhausted=exhausted,
        )

    def _once(
        self, operation: str, call: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        timeout = (self.policy.connect_timeout, self.policy.read_timeout)
        try:
            response = call(*args, _preload_content=False, _request_timeout=timeout, **kwargs)
            data = response.data
        except ApiException as exc:
            raise self._judge(operation, exc) from None
        except urllib3.exceptions.HTTPError as exc:
            # Refused, reset, timed out: the client never got an answer.
            raise TransientError(f"no answer from the API server ({_short(exc)})") from exc
        document = json.loads(data) if data else {}
        return document if isinstance(document, dict) else {}

    def _judge(self, operation: str, exc: ApiException) -> Exception:
        status = int(exc.status or 0)
        status_doc = _status_document(exc.body)
        message = _status_message(status_doc, exc)
        where = f"{operation} in namespace {self.namespace}"
        if status == 0 and not _is_certificate_problem(message):
            # The client reports every TLS-layer failure as status 0; an EOF or reset mid-handshake
            # (a restarting API server, a load balancer) is worth another attempt.
            return TransientError(f"TLS connection failed ({message})")
        if status == 0:
            # A certificate that does not verify will not verify on the next attempt either.
            return DeployError(
                f"{where}: could not talk to the API server at {self.host} ({message}); check the cluster's "
                f"certificate-authority in the kubeconfig from {self._credential}",
                platform=PLATFORM,
                operation=operation,
            )
        if status == 401:
            return DeployError(
                f"{where}: the API server rejected the credentials (HTTP 401 Unauthorized: {message}). Check that "
                f"{self._credential} holds a current kubeconfig whose token or client certificate is valid.",
                platform=PLATFORM,
                operation=operation,
            )
        if status == 403:
            return DeployError(
                f"{where}: forbidden (HTTP 403: {message}). Grant the deploying identity get, list, create, "
                f"update, patch and delete on deployments.apps and services in {self.namespace} (a Role + "
                "RoleBinding).",
                platform=PLATFORM,
                operation=operation,
            )
        if status == 404:
            return NotFoundError(f"{where}: not found (HTTP 404: {message})", platform=PLATFORM, operation=operation)
        if status == 409:
            reason = str(status_doc.get("reason") or "Conflict")
            return ConflictError(f"{where}: {reason} (HTTP 409: {message})", operation=operation, reason=reason)
        if status == 429:
            return rate_limited(
                exc.headers,
                self.policy,
                f"throttled (HTTP 429: {message})",
                too_long=lambda why: DeployError(
                    f"{where}: throttled by the API server (HTTP 429: {message}); {why}",
                    platform=PLATFORM,
                    operation=operation,
                ),
            )
        if status >= 500:
            return TransientError(f"HTTP {status}: {message}")
        return DeployError(f"{where}: HTTP {status}: {message}", platform=PLATFORM, operation=operation)


def _status_document(body: Any) -> dict[str, Any]:
    if not body:
        return {}
    try:
        document = json.loads(body)
    except (TypeError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _status_message(status_doc: dict[str, Any], exc: ApiException) -> str:
    """The API server's `Status.message` (or the HTTP reason) as one line, secrets masked."""
    text = str(status_doc.get("message") or exc.reason or "no message")
    return redact(" ".join(text.split())[:300])


def _is_certificate_problem(message: str) -> bool:
    lowered = message.lower()
    return "certificate" in lowered or "hostname" in lowered or "verify" in lowered


def _short(exc: Exception) -> str:
    text = str(exc)
    return redact(text.splitlines()[0][:200]) if text else type(exc).__name__
