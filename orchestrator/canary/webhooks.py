"""Phase webhooks (Flagger's): a JSON POST at each phase of a canary, signed with HMAC-SHA256.

The body is signed with the key held in the variable the hook names (`secret_env`); the signature
travels as `X-Deploy-Signature-256: sha256=<hex>` (GitHub's scheme, so receivers have code for it)
with the body's own `sent_at` against replays. The key is a `Secret`: it is never logged or sent.

A gating hook approves with any 2xx. Anything else — another status, no answer within its timeout, a
refused connection — is a rejection: `on_reject: abort` stops the rollout at once (the usual
rollback follows); `hold` asks again every `retry_seconds` until approved, or aborts once
`hold_seconds` have passed. A hook that is not gating is told and never stops anything. The
`rollback` phase is never gating: nothing can veto going back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from orchestrator.contract.canary import Phase, Webhook
from orchestrator.errors import ConfigError, HealthError
from orchestrator.redaction import Secret
from orchestrator.runlog import RunLog

__all__ = ["SIGNATURE_HEADER", "HookAnswer", "PhaseHooks", "sign"]

SIGNATURE_HEADER = "X-Deploy-Signature-256"


def sign(key: str, body: bytes) -> str:
    """The signature header's value for `body` under `key`."""
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class HookAnswer:
    """What one hook said at one phase (kept in the result)."""

    hook: str
    phase: Phase
    approved: bool
    status: int | None
    """The HTTP status, or None when nothing answered."""
    detail: str
    attempts: int


class PhaseHooks:
    """Sends every configured hook its phases. Build it before anything is touched: a named secret
    variable that is not set is a ConfigError (exit 2)."""

    def __init__(
        self,
        hooks: Sequence[Webhook],
        env: Mapping[str, str],
        log: RunLog,
        *,
        context: Mapping[str, Any] | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        problems = [
            f"deployment_config.canary.webhooks[{i}].secret_env: ${hook.secret_env} is not set; "
            "export the HMAC key under that name, or name the variable that holds it"
            for i, hook in enumerate(hooks)
            if hook.secret_env and not env.get(hook.secret_env)
        ]
        if problems:
            raise ConfigError(problems)
        self._hooks = tuple(hooks)
        self._keys = {h.name: Secret(env[h.secret_env], h.secret_env) for h in hooks if h.secret_env}
        self._log = log
        self._context = dict(context or {})
        """Sent with every phase (the deployment id, the repository)."""
        self._session = session or requests.Session()
        self._sleep = sleep
        self._clock = clock
        self.answers: list[HookAnswer] = []

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def to_dict(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(a) for a in self.answers]

    def phase(self, phase: Phase, payload: Mapping[str, Any]) -> None:
        """Send `phase` to every hook that lists it. Raises HealthError when a gating hook rejects it
        (at once, or after its hold ran out)."""
        for hook in self._hooks:
            if phase in hook.phases:
                self._one(hook, phase, payload)

    def _one(self, hook: Webhook, phase: Phase, payload: Mapping[str, Any]) -> None:
        gating = hook.gating and phase != "rollback"
        holding = gating and hook.on_reject == "hold"
        deadline = self._clock() + hook.hold_seconds
        attempts = 0
        while True:
            attempts += 1
            status, detail = self._post(hook, phase, payload)
            approved = status is not None and 200 <= status < 300
            if approved or not gating or not holding or self._clock() + hook.retry_seconds > deadline:
                break
            self._log.info(f"webhook {hook.name} holds {phase} ({detail}); asking again in {hook.retry_seconds:g} s")
            self._sleep(hook.retry_seconds)
        answer = HookAnswer(hook.name, phase, approved, status, detail, attempts)
        self.answers.append(answer)
        if approved:
            self._log.info(f"webhook {hook.name} approved {phase} ({detail})")
            return
        if not gating:
            self._log.warn(f"webhook {hook.name} at {phase}: {detail} (not gating: the rollout goes on)")
            return
        held = f" after holding {attempts} attempts" if holding else ""
        raise HealthError(
            f"webhook {hook.name} rejected {phase}{held}: {detail}",
            check=f"webhook {hook.name}",
            step="webhook",
        )

    def _post(self, hook: Webhook, phase: Phase, payload: Mapping[str, Any]) -> tuple[int | None, str]:
        doc = {"phase": phase, "hook": hook.name, "sent_at": datetime.now(UTC).isoformat(), **self._context, **payload}
        body = json.dumps(doc, sort_keys=True, default=str).encode()
        headers = {"Content-Type": "application/json"}
        key = self._keys.get(hook.name)
        if key is not None:
            headers[SIGNATURE_HEADER] = sign(key.reveal(), body)
        try:
            response = self._session.post(hook.url, data=body, headers=headers, timeout=hook.timeout_seconds)
        except requests.Timeout:
            return None, f"no answer within {hook.timeout_seconds:g} s"
        except requests.RequestException as exc:
            return None, f"unreachable ({type(exc).__name__})"
        text = response.text.strip().replace("\n", " ")[:200]
        return response.status_code, f"HTTP {response.status_code}" + (f": {text}" if text else "")
