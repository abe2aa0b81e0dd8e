"""The vocabulary of a rollout plan: plain frozen data, one class per kind of step."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.contract.canary import AnalysisPolicy, Phase, Stickiness


@dataclass(frozen=True, slots=True)
class Start:
    """Bring the new release up (on platforms that cut over by themselves this also makes it live)."""

    version: str
    image: str | None
    first_weight: int = 100
    """The first share of traffic it will get: a router may start it with only the pods for that."""


@dataclass(frozen=True, slots=True)
class PreSwitchCheck:
    """The seed's health flow against the new release directly, before it gets traffic."""

    analysis: bool = False
    """Also run the verification checks against the release (verification.before_switch)."""


@dataclass(frozen=True, slots=True)
class Route:
    """Send new requests by weight; in-flight ones finish where they are."""

    weights: tuple[tuple[str, int], ...]
    sticky: Stickiness | None = None
    """Keep each client on the release it first got (a canary's `canary.sticky`)."""
    effective: tuple[tuple[str, int], ...] | None = None
    """What the platform really gives when it can only approximate `weights` (None: exactly them)."""

    @property
    def new_weight(self) -> int:
        return self.weights[-1][1]


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float
    watch: Analysis | None = None
    """Look at this judged analysis every `interval_seconds` while pausing; a fail ends the pause."""


@dataclass(frozen=True, slots=True)
class Analysis:
    """Canary analysis at a step: the verification checks, read through the public route, and with
    `judged`, the canary against `baseline` on the data plane's counters since the step's Route."""

    weight: int
    judged: AnalysisPolicy | None = None
    canary: str = ""
    baseline: str = ""


@dataclass(frozen=True, slots=True)
class Warmup:
    """Let the canary, just routed to, serve its first requests before the analysis window opens."""

    version: str
    requests: int
    seconds: float = 0.0
    timeout_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class Hook:
    """Send the phase webhooks for `phase` (a gating one may hold or stop the rollout)."""

    phase: Phase
    weight: int | None = None


@dataclass(frozen=True, slots=True)
class Verify:
    """Post-switch verification on the live URL: health plus the configured checks, in parallel."""


Step = Start | PreSwitchCheck | Route | Warmup | Pause | Analysis | Hook | Verify


def describe(step: Step) -> str:
    match step:
        case Start(version, image):
            return f"start release {version}" + (f" ({image})" if image else "")
        case PreSwitchCheck(analysis):
            return "health-check the new release before traffic moves" + (" (with analysis)" if analysis else "")
        case Route(weights, sticky, effective):
            routed = "route " + _shares(weights)
            if effective is not None:
                routed += f" (effective {_shares(effective)}: the platform splits by whole replicas)"
            return routed + (" (sticky sessions)" if sticky and len(weights) > 1 else "")
        case Warmup(version, requests, seconds, _):
            at_least = f", at least {seconds:g}s" if seconds else ""
            return f"warm up {version}: its first {requests} requests left out of the analysis{at_least}"
        case Pause(seconds, watch):
            interval = watch.judged.interval_seconds if watch and watch.judged else None
            return f"pause {seconds:g}s" + (f", judging every {interval:g}s" if interval else "")
        case Analysis(weight, judged, canary, baseline):
            if judged is None:
                return f"analysis at {weight}%"
            limits = f"p95 +{judged.max_p95_increase_pct:g}%, errors +{judged.max_error_rate_increase_pts:g} pts"
            return f"analysis at {weight}%: {canary} against {baseline} ({limits})"
        case Hook(phase, weight):
            return f"webhooks: {phase}" + (f" at {weight}%" if weight is not None else "")
        case Verify():
            return "verify the live release (health, database, endpoints, jobs, metrics)"
    raise AssertionError(step)


def _shares(weights: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{w}% to {v}" for v, w in weights if w)
