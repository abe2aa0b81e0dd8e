"""Where the Kubernetes client's connection comes from.

In order: the env var named by `credentials.k8s_kubeconfig_env_var`, holding either a kubeconfig's
*content* (what `secrets.KUBECONFIG` usually holds) or a *path* to one; otherwise the pod's service
account when running inside a cluster (`KUBERNETES_SERVICE_HOST` set). Anything else is a
ConfigError naming the variable and the fix.

urllib3's own retries are switched off: `api.KubeApi` owns retrying (`orchestrator.http_retry`), so a
request is never re-sent by two layers. Every bearer token the config yields is registered as a
secret before any request is made, so logs and error messages mask it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s_client
from kubernetes import config as _k8s_config
from kubernetes.config.config_exception import ConfigException

from orchestrator.errors import ConfigError
from orchestrator.redaction import Secret, redact, register

__all__ = ["IN_CLUSTER_ENV", "load_api_client"]

IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"
_FIELD = "credentials.k8s_kubeconfig_env_var"
# The client's config loaders are untyped; one Any-typed handle keeps strict mypy quiet about them.
k8s_config: Any = _k8s_config


def load_api_client(env: Mapping[str, str], var: str | None, *, context: str | None = None) -> Any:
    """A `kubernetes.client.ApiClient` for the cluster. Raises ConfigError naming the variable."""
    configuration = k8s_client.Configuration()
    value = env.get(var, "").strip() if var else ""
    if value:
        kubeconfig = Secret(value, name=str(var))
        _load_kubeconfig(kubeconfig, str(var), configuration, context)
    elif env.get(IN_CLUSTER_ENV):
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except ConfigException as exc:
            raise ConfigError(f"{_FIELD}: running in a cluster but its service account is unusable: {exc}") from None
    elif var:
        raise ConfigError(
            f"{_FIELD}: the environment variable {var} is not set or empty and this is not running inside a "
            f"cluster; put the kubeconfig (its content or its path) in {var}, "
            "e.g. `env: {" + var + ": ${{ secrets.KUBECONFIG }}}`"
        )
    else:
        raise ConfigError(
            f"{_FIELD}: required with platform kubernetes outside a cluster; name the environment variable "
            "that holds the kubeconfig (e.g. k8s_kubeconfig_env_var: KUBECONFIG_CONTENT)"
        )
    configuration.retries = False
    _register_token(configuration)
    return k8s_client.ApiClient(configuration)


def _load_kubeconfig(kubeconfig: Secret, var: str, configuration: Any, context: str | None) -> None:
    text = kubeconfig.reveal()
    try:
        if _is_content(text):
            document = _parse(text, var)
            k8s_config.load_kube_config_from_dict(
                document, context=context, client_configuration=configuration, persist_config=False
            )
        else:
            path = Path(text).expanduser()
            if not path.is_file():
                raise ConfigError(
                    f"{_FIELD}: {var} holds neither kubeconfig YAML nor the path of an existing file "
                    f"({path} does not exist); put the kubeconfig's content or its path in {var}"
                )
            k8s_config.load_kube_config(
                config_file=str(path), context=context, client_configuration=configuration, persist_config=False
            )
    except ConfigException as exc:
        raise ConfigError(f"{_FIELD}: the kubeconfig in {var} is unusable: {redact(str(exc))}") from None


def _is_content(text: str) -> bool:
    # A path never spans lines; a kubeconfig (YAML or JSON) always does or starts like a document.
    return "\n" in text or text.startswith(("{", "apiVersion"))


def _parse(text: str, var: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{_FIELD}: {var} does not hold valid kubeconfig YAML{where}") from None
    if not isinstance(document, dict) or "clusters" not in document:
        raise ConfigError(f"{_FIELD}: {var} holds YAML that is not a kubeconfig (no `clusters`)")
    return document


def _register_token(configuration: Any) -> None:
    # The loaders store "Bearer <token>" under `BearerToken` (older clients: `authorization`).
    for header in (configuration.api_key or {}).values():
        text = str(header or "")
        token = text.split(" ", 1)[1] if text.lower().startswith("bearer ") else text
        if token:
            register(token)
