"""The canary's configuration as typed data (`deployment_config.canary` beyond its steps): the
analysis that judges each step, sticky sessions, and the phase webhooks. Parsed by `config` into
`DeploymentConfig`: the contract, so a platform reads `Stickiness` without importing the canary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "PHASES",
    "AnalysisPolicy",
    "ErrorTest",
    "Phase",
    "PrometheusSource",
    "Stickiness",
    "Webhook",
]

ErrorTest = Literal["fisher", "two_proportion"]
Phase = Literal["confirm-rollout", "pre-rollout", "rollout", "confirm-promotion", "post-rollout", "rollback"]
PHASES: tuple[Phase, ...] = (
    "confirm-rollout",
    "pre-rollout",
    "rollout",
    "confirm-promotion",
    "post-rollout",
    "rollback",
)
"""Flagger's phases, in run order; `rollout` is sent at each canary step."""


@dataclass(frozen=True, slots=True)
class AnalysisPolicy:
    """`canary.analysis`: how a step's canary is judged against its baseline (see `canary.judgement`)."""

    min_requests: int = 100
    """Requests each of canary and baseline must have in the window before anything is decided."""
    warmup_requests: int = 20
    """After each canary route, the canary's first this many requests are left out of the window: a
    release just started (or scaled up) answers its first requests slower, which would fail an equal
    canary; discarding them keeps the limits as strict for a truly slower one."""
    warmup_seconds: float = 0.0
    """The warm-up also lasts at least this long."""
    warmup_timeout_seconds: float = 30.0
    """A warm-up that has not seen `warmup_requests` by then ends anyway (min_requests still holds)."""
    max_p95_increase_pct: float = 20.0
    """A canary p95 latency this much above the baseline's (and significantly slower) fails."""
    max_error_rate_increase_pts: float = 1.0
    """A canary error rate this many percentage points above the baseline's (and significant) fails."""
    alpha: float = 0.05
    """Significance level of both one-sided tests."""
    error_test: ErrorTest = "fisher"
    extend_seconds: float = 10.0
    """An inconclusive step waits this much longer, measuring the same growing window, ..."""
    max_extensions: int = 3
    """... at most this many times; then `on_inconclusive` decides."""
    on_inconclusive: Literal["pass", "fail"] = "fail"
    interval_seconds: float | None = None
    """Also look every this many seconds during a step's pause: a fail aborts at once (fail fast);
    a pass or an inconclusive look waits for the pause to end and the step's own analysis."""


@dataclass(frozen=True, slots=True)
class PrometheusSource:
    """`canary.analysis.prometheus_*` (Kubernetes): where the counters are and what they are called."""

    url: str
    job: str = "deploy-orchestrator"
    version_label: str = "version"
    requests_metric: str = "http_requests_total"
    duration_metric: str = "http_request_duration_seconds"

    def queries(self) -> tuple[str, str]:
        selector = f'{{job="{self.job}"}}'
        return (
            f"sum by ({self.version_label}, code) ({self.requests_metric}{selector})",
            f"sum by ({self.version_label}, le) ({self.duration_metric}_bucket{selector})",
        )


@dataclass(frozen=True, slots=True)
class Stickiness:
    """`canary.sticky`: a client keeps the release it first got, by a cookie or by a header's value."""

    cookie: str | None = "canary"
    header: str | None = None


@dataclass(frozen=True, slots=True)
class Webhook:
    """`canary.webhooks[]`: an HMAC-signed POST at the phases listed."""

    name: str
    url: str
    phases: tuple[Phase, ...]
    secret_env: str | None = None
    """The environment variable holding the HMAC key (the value is never logged)."""
    timeout_seconds: float = 10.0
    gating: bool = True
    """A gating hook's non-2xx (or no answer in time) holds or aborts the rollout; else it is only told."""
    on_reject: Literal["hold", "abort"] = "abort"
    hold_seconds: float = 60.0
    """`hold`: ask again every `retry_seconds` until approved or this long has passed (then abort)."""
    retry_seconds: float = 5.0
