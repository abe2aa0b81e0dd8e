"""The DigitalOcean calls the Droplet hosts need, through pydo with the App Platform client's retries and errors.

Reads and the load balancer's add/remove (idempotent: adding a member twice or removing an absent
one changes nothing) are retried on transient failures. A reserved IP's assign action is not
re-sent blindly: after an ambiguous failure the IP is read first, and an action already under way
(or done) for the same Droplet counts as sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.errors import ConfigError, DeployError
from orchestrator.platforms.digitalocean.api import AppsApi, RetryPolicy
from orchestrator.platforms.digitalocean.descriptor import CA_BUNDLE_ENV, ENDPOINT_ENV
from orchestrator.redaction import Secret

__all__ = ["DropletApi", "droplet_api"]

_DEFAULT_ENDPOINT = "https://api.digitalocean.com"
_PER_PAGE = 200
_POLL_SECONDS = 0.25
_MAX_PAGES = 50
# Membership calls are small and the switch waits on them: retry sooner than App Platform's deploys do.
_POLICY = RetryPolicy(initial_wait=0.5, max_wait=4.0)


class DropletApi:
    def __init__(self, api: AppsApi, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._api = api
        self._client = api.client
        self.sleep = sleep

    def droplets(self, tag: str, *, per_page: int = _PER_PAGE) -> list[dict[str, Any]]:
        """Every Droplet carrying `tag`, through every page (`per_page` at a time, at most 200)."""
        found: list[dict[str, Any]] = []
        for page in range(1, _MAX_PAGES + 1):
            body = self._api.read(
                f"list the Droplets tagged {tag}",
                self._client.droplets.list,
                tag_name=tag,
                per_page=per_page,
                page=page,
            )
            found += body.get("droplets") or []
            if not ((body.get("links") or {}).get("pages") or {}).get("next"):
                break
        return found

    def members(self, lb_id: str) -> frozenset[int]:
        """The Droplet ids behind load balancer `lb_id`."""
        body = self._api.read(f"read load balancer {lb_id}", self._client.load_balancers.get, lb_id)
        balancer = body.get("load_balancer") or {}
        if balancer.get("tag"):
            raise DeployError(
                f"load balancer {lb_id} targets Droplets by tag {balancer['tag']!r}, so its Droplets cannot be moved "
                "between groups; set its Droplets by id (doctl compute load-balancer update --droplet-ids)",
                platform="hosts",
                operation="switch",
            )
        return frozenset(int(i) for i in balancer.get("droplet_ids") or ())

    def health_settle(self, lb_id: str) -> float:
        """How long load balancer `lb_id` takes to send traffic to a Droplet just added: its health check's
        interval times its healthy threshold (DigitalOcean's defaults, 10 s and 3, when it leaves them out)."""
        body = self._api.read(f"read load balancer {lb_id}", self._client.load_balancers.get, lb_id)
        check = (body.get("load_balancer") or {}).get("health_check") or {}
        return float(check.get("check_interval_seconds", 10)) * float(check.get("healthy_threshold", 3))

    def add(self, lb_id: str, droplet_ids: tuple[int, ...]) -> None:
        self._api.read(
            f"add Droplets {list(droplet_ids)} to load balancer {lb_id}",
            self._client.load_balancers.add_droplets,
            lb_id,
            {"droplet_ids": list(droplet_ids)},
        )

    def remove(self, lb_id: str, droplet_ids: tuple[int, ...]) -> None:
        self._api.read(
            f"remove Droplets {list(droplet_ids)} from load balancer {lb_id}",
            self._client.load_balancers.remove_droplets,
            lb_id,
            {"droplet_ids": list(droplet_ids)},
        )

    def assigned(self, ip: str) -> tuple[int | None, bool]:
        """The Droplet reserved IP `ip` points at (None: unassigned) and whether an action on it is under way."""
        body = self._api.read(f"read reserved IP {ip}", self._client.reserved_ips.get, ip)
        reserved = body.get("reserved_ip") or {}
        droplet = reserved.get("droplet") or {}
        return (int(droplet["id"]) if droplet.get("id") is not None else None), bool(reserved.get("locked"))

    def assign(self, ip: str, droplet_id: int, timeout: float) -> None:
        """Point reserved IP `ip` at `droplet_id` and wait until DigitalOcean says it does."""
        operation = f"assign reserved IP {ip} to Droplet {droplet_id}"

        def look() -> dict[str, Any] | None:
            now, locked = self.assigned(ip)
            return {"sent": True} if now == droplet_id or locked else None

        self._api.create(
            operation,
            lambda: self._api.once(
                operation, self._client.reserved_ips_actions.post, ip, {"type": "assign", "droplet_id": droplet_id}
            ),
            look,
        )
        deadline = time.monotonic() + timeout
        while True:
            now, locked = self.assigned(ip)
            if now == droplet_id and not locked:
                return
            if not locked:
                raise DeployError(
                    f"{operation}: the action ended with the IP on Droplet {now}; DigitalOcean did not move it",
                    platform="hosts",
                    operation="switch",
                )
            if time.monotonic() > deadline:
                raise DeployError(
                    f"{operation}: still in progress after {timeout:g} s (hosts.droplets.switch_timeout_seconds)",
                    platform="hosts",
                    operation="switch",
                )
            self.sleep(_POLL_SECONDS)


def droplet_api(token_var: str, env: Mapping[str, str]) -> DropletApi:
    """The API client for the token in `env[token_var]`. Raises ConfigError when it is missing."""
    value = env.get(token_var, "").strip()
    if not value:
        raise ConfigError(
            f"credentials.do_api_token_env_var: the environment variable {token_var} is not set or empty; hosts."
            "droplets finds the hosts through the DigitalOcean API: pass a token with droplet:read, "
            "load_balancer:update and reserved_ip:update to it"
        )
    api = AppsApi(
        Secret(value, name=token_var),
        endpoint=env.get(ENDPOINT_ENV) or _DEFAULT_ENDPOINT,
        verify=env.get(CA_BUNDLE_ENV) or True,
        policy=_POLICY,
    )
    return DropletApi(api)
