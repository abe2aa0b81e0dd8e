"""What a health check concludes, and the protocol a rollout asks its health side through.

Strategies, the rollback and previews see health only as `Checks` returning `CheckVerdict`s; the
pipeline passes in `ReleaseChecks` (or a stand-in for a preview) so strategies stay platform-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from orchestrator.contract import HealthProbe

__all__ = ["CheckVerdict", "Checks"]


@dataclass(frozen=True, slots=True)
class CheckVerdict:
    passed: bool
    probes: tuple[HealthProbe, ...] = ()
    reason: str | None = None


class Checks(Protocol):
    """The health side of a rollout, given by the pipeline so strategies stay platform-only."""

    def release(self, base_url: str, *, analysis: bool, deadline: float | None = None) -> CheckVerdict:
        """The seed's health flow (and optionally the verification checks) against one release,
        finishing by `deadline` (a time.monotonic() value) at the latest."""

    def live(self, base_url: str) -> CheckVerdict:
        """Post-switch verification through the public route."""
