"""The verdict on one canary step: canary against baseline over the same window. Pure.

Two metrics, each with its own test and its own effect that matters (Kayenta's shape):
- latency: Mann-Whitney U, one-sided (is the canary slower?), on the requests' latency buckets (each
  request ranked by its bucket, ties within a bucket) or on raw samples; the effect is the p95 ratio;
- error rate (5xx and unanswered): Fisher's exact test or the two-proportion z-test, one-sided; the
  effect is the difference in percentage points.
Each metric fails when its effect reaches the limit AND its test is significant; is inconclusive when
the effect reaches the limit but the test is not yet significant (or either side has fewer requests
than the minimum); passes otherwise (a significant but small difference does not matter). The step
fails if any metric fails, else is inconclusive if any is, else passes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from orchestrator.contract.canary import AnalysisPolicy
from orchestrator.platforms.traffic import ReleaseTraffic, TrafficSample

if TYPE_CHECKING:
    import numpy as np

# numpy and scipy are imported where a canary is judged, not with this module: every run imports it
# (the strategies do), and loading scipy.stats cost each deploy about 30 MB of RSS and seconds of start-up.

__all__ = ["MetricVerdict", "Move", "Outcome", "Verdict", "compare_errors", "compare_latency", "judge", "next_move"]

Outcome = Literal["pass", "fail", "inconclusive", "unmeasured"]
Move = Literal["promote", "extend", "abort"]


@dataclass(frozen=True, slots=True)
class MetricVerdict:
    metric: Literal["latency_p95", "error_rate"]
    outcome: Outcome
    test: str
    canary: float | None
    """p95 in ms, or the error rate in percent."""
    baseline: float | None
    effect: float | None
    """p95 increase in percent, or error-rate increase in points."""
    limit: float
    p_value: float | None
    reason: str

    @classmethod
    def unjudged(
        cls, metric: Literal["latency_p95", "error_rate"], outcome: Outcome, test: str, limit: float, reason: str
    ) -> MetricVerdict:
        """A verdict without numbers: too few requests to judge, or nothing measured to judge by."""
        return cls(metric, outcome, test, None, None, None, limit, None, reason)

    def describe(self) -> str:
        unit = "ms" if self.metric == "latency_p95" else "%"
        effect_unit = "%" if self.metric == "latency_p95" else " pts"
        if self.canary is None or self.baseline is None:
            return f"{self.metric} {self.outcome}: {self.reason}"
        p = "" if self.p_value is None else f", {self.test} p={self.p_value:.3g}"
        effect = (
            "" if self.effect is None else f" ({self.effect:+.1f}{effect_unit}, limit +{self.limit:g}{effect_unit}{p})"
        )
        sides = f"canary {self.canary:.2f}{unit} vs baseline {self.baseline:.2f}{unit}"
        return f"{self.metric} {self.outcome}: {sides}{effect}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One analysis of one step (an extended step has one per look)."""

    outcome: Literal["pass", "fail", "inconclusive"]
    weight: int
    canary_version: str
    baseline_version: str
    canary_requests: int
    baseline_requests: int
    metrics: tuple[MetricVerdict, ...]
    source: str
    look: int = 0
    """0 for the step's first analysis, n for its n-th extension."""
    early: bool = False
    """Looked during the step's pause (`interval_seconds`), before its own analysis."""

    def describe(self) -> str:
        head = (
            f"canary {self.weight}% {self.outcome.upper()}"
            + (f" (extension {self.look})" if self.look else "")
            + (" (during the pause)" if self.early else "")
            + f": {self.canary_requests} canary / {self.baseline_requests} baseline requests ({self.source})"
        )
        return "; ".join([head, *(m.describe() for m in self.metrics)])

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["metrics"] = [{k: _json_number(v) for k, v in m.items()} for m in doc["metrics"]]
        return doc


def judge(
    measured: TrafficSample,
    *,
    canary: str,
    baseline: str,
    weight: int,
    policy: AnalysisPolicy,
    look: int = 0,
    early: bool = False,
) -> Verdict:
    """The verdict on `canary` against `baseline` from one window's counters."""
    c, b = measured.get(canary), measured.get(baseline)
    if c.requests < policy.min_requests or b.requests < policy.min_requests:
        reason = f"too few requests: {c.requests} canary, {b.requests} baseline; at least {policy.min_requests} each"
        metrics: tuple[MetricVerdict, ...] = (
            MetricVerdict.unjudged(
                "latency_p95", "inconclusive", "mann-whitney-u", policy.max_p95_increase_pct, reason
            ),
            MetricVerdict.unjudged(
                "error_rate", "inconclusive", policy.error_test, policy.max_error_rate_increase_pts, reason
            ),
        )
    else:
        metrics = (_latency(c, b, policy), compare_errors(c, b, policy))
    outcomes = {m.outcome for m in metrics}
    outcome: Literal["pass", "fail", "inconclusive"] = (
        "fail" if "fail" in outcomes else "inconclusive" if "inconclusive" in outcomes else "pass"
    )
    return Verdict(outcome, weight, canary, baseline, c.requests, b.requests, metrics, measured.source, look, early)


def next_move(verdict: Verdict, policy: AnalysisPolicy) -> Move:
    """What the step does after `verdict`: go on, look again later, or abort (weight 0, rollback)."""
    if verdict.outcome == "pass":
        return "promote"
    if verdict.outcome == "fail":
        return "abort"
    if verdict.look < policy.max_extensions:
        return "extend"
    return "promote" if policy.on_inconclusive == "pass" else "abort"


def _latency(c: ReleaseTraffic, b: ReleaseTraffic, policy: AnalysisPolicy) -> MetricVerdict:
    if c.buckets is None or b.buckets is None:
        return MetricVerdict.unjudged(
            "latency_p95",
            "unmeasured",
            "mann-whitney-u",
            policy.max_p95_increase_pct,
            "this data plane keeps no latency histogram; judged on errors alone",
        )
    import numpy as np

    ranks = np.arange(len(c.buckets))
    c_p95, b_p95 = c.quantile(0.95), b.quantile(0.95)
    assert c_p95 is not None and b_p95 is not None  # both have requests
    return compare_latency(
        np.repeat(ranks, c.buckets), np.repeat(ranks, b.buckets), c_p95 * 1000, b_p95 * 1000, policy, bucketed=True
    )


def compare_latency(
    canary: Sequence[float] | np.ndarray[Any, Any],
    baseline: Sequence[float] | np.ndarray[Any, Any],
    canary_p95_ms: float,
    baseline_p95_ms: float,
    policy: AnalysisPolicy,
    *,
    bucketed: bool = False,
) -> MetricVerdict:
    """Latency of canary against baseline: samples (seconds) or bucket ranks, with their p95 in ms."""
    from scipy import stats

    limit = policy.max_p95_increase_pct
    test = "mann-whitney-u" + (" (bucketed)" if bucketed else "")
    # Ties in a bucketed histogram rule out the exact distribution: the normal approximation, tie-corrected.
    result = stats.mannwhitneyu(canary, baseline, alternative="greater", method="asymptotic" if bucketed else "auto")
    p_value = float(result.pvalue)
    effect = (canary_p95_ms / baseline_p95_ms - 1) * 100 if baseline_p95_ms > 0 else math.inf
    return _verdict(
        "latency_p95",
        test,
        canary_p95_ms,
        baseline_p95_ms,
        effect,
        limit,
        p_value,
        policy,
        subject="the canary",
        worse="slower",
    )


def compare_errors(c: ReleaseTraffic, b: ReleaseTraffic, policy: AnalysisPolicy) -> MetricVerdict:
    """Error rate of canary against baseline, by the configured test."""
    limit = policy.max_error_rate_increase_pts
    c_rate, b_rate = 100 * c.error_rate, 100 * b.error_rate
    effect = c_rate - b_rate
    if policy.error_test == "fisher":
        import numpy as np
        from scipy import stats

        table = np.array([[c.errors, c.requests - c.errors], [b.errors, b.requests - b.errors]])
        p_value = float(stats.fisher_exact(table, alternative="greater").pvalue)
        test = "fisher-exact"
    else:
        p_value = _two_proportion(c.errors, c.requests, b.errors, b.requests)
        test = "two-proportion-z"
    return _verdict(
        "error_rate",
        test,
        c_rate,
        b_rate,
        effect,
        limit,
        p_value,
        policy,
        subject="the canary's error rate",
        worse="higher",
    )


def _two_proportion(x1: int, n1: int, x2: int, n2: int) -> float:
    pooled = (x1 + x2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 1.0  # both rates equal (all errors or none): no evidence the canary is worse
    from scipy import stats

    return float(stats.norm.sf((x1 / n1 - x2 / n2) / spread))


def _verdict(
    metric: Literal["latency_p95", "error_rate"],
    test: str,
    canary: float,
    baseline: float,
    effect: float,
    limit: float,
    p_value: float,
    policy: AnalysisPolicy,
    *,
    subject: str,
    worse: str,
) -> MetricVerdict:
    """The verdict on one metric: it fails only when the effect matters (at least `limit`) and is
    significant (p below `alpha`); when it matters but is not yet significant, more data decides."""
    outcome = _decide(effect >= limit, p_value < policy.alpha)
    reason = {
        "pass": f"{subject} is not {worse} by as much as matters",
        "fail": f"{subject} is significantly {worse}, by more than the limit",
        "inconclusive": f"{subject} looks {worse} by more than the limit, not yet significantly",
    }[outcome]
    return MetricVerdict(metric, outcome, test, canary, baseline, effect, limit, p_value, reason)


def _decide(matters: bool, significant: bool) -> Literal["pass", "fail", "inconclusive"]:
    if not matters:
        return "pass"
    return "fail" if significant else "inconclusive"


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return round(value, 6) if isinstance(value, float) else value
