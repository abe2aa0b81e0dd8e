"""The vocabulary of a rollout plan: plain frozen data, one class per kind of step."""

from __future__ import annotations

from dataclasses import dataclass


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
    effective: tuple[tuple[str, int], ...] | None = None
    """What the platform really gives when it can only approximate `weights` (None: exactly them)."""

    @property
    def new_weight(self) -> int:
        return self.weights[-1][1]


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float


@dataclass(frozen=True, slots=True)
class Analysis:
    """Canary analysis at a step: the verification checks, read through the public route."""

    weight: int


@dataclass(frozen=True, slots=True)
class Verify:
    """Post-switch verification on the live URL: health plus the configured checks, in parallel."""


Step = Start | PreSwitchCheck | Route | Pause | Analysis | Verify


def describe(step: Step) -> str:
    match step:
        case Start(version, image):
            return f"start release {version}" + (f" ({image})" if image else "")
        case PreSwitchCheck(analysis):
            return "health-check the new release before traffic moves" + (" (with analysis)" if analysis else "")
        case Route(weights, effective):
            if effective is None:
                return "route " + _shares(weights)
            return f"route {_shares(weights)} (effective {_shares(effective)}: the platform splits by whole replicas)"
        case Pause(seconds):
            return f"pause {seconds:g}s"
        case Analysis(weight):
            return f"analysis at {weight}%"
        case Verify():
            return "verify the live release (health, database, endpoints, jobs, metrics)"
    raise AssertionError(step)


def _shares(weights: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{w}% to {v}" for v, w in weights if w)
