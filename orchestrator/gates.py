"""The deploy gates: a passed validation run and a compliant verdict, bound to the artifacts' digests.

The seed's hard boundaries, enforced here: no deploy without a passed run of the
ValidationAgent (agent_005) for this `validation_run_id` (*no test bypass*); no deploy
without a `compliant` verdict of the ComplianceValidator (agent_002) on that same run
(*no compliance override*: the compliance gate is absolute); the artifacts being
deployed must be exactly the ones validated and approved, file by file (*no code
modification*); and every migration file must be exactly what the SQLAgent (agent_004)
produced and recorded, the approved set being the set it produced (`sqlagent.py`). The
verdict's migrations are the only ones the migration runner may run (*no data modification
beyond approved migrations, migrations from the SQLAgent*).

There is deliberately no flag, input, environment variable or parameter that skips,
forces or overrides a gate; `tests/gates/test_no_override.py` keeps it that way. A
refusal raises `GateError` (exit 3) before anything is touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from orchestrator.artifacts import ArtifactDigests, DigestDifference, compare_digests, image_warning, vouched_commit
from orchestrator.contract import DeployConfig, GatesConfig
from orchestrator.errors import GateError
from orchestrator.sqlagent import SQLAGENT_ID, Provenance, check_provenance, check_undo_provenance
from orchestrator.store import DatabaseVerdicts, HttpVerdicts, VerdictSource, open_verdict_source

__all__ = [
    "COMPLIANCE_VALIDATOR_ID",
    "SQLAGENT_ID",
    "VALIDATION_AGENT_ID",
    "DatabaseVerdicts",
    "GateReport",
    "HttpVerdicts",
    "VerdictSource",
    "check_gates",
    "check_undo_provenance",
    "open_source",
    "open_verdict_source",
]

VALIDATION_AGENT_ID = "agent_005"
COMPLIANCE_VALIDATOR_ID = "agent_002"
# A run stamped in the future cannot be judged for age; allow ordinary clock skew only.
_CLOCK_SKEW = timedelta(minutes=5)


LISTED_APPROVALS = 20
"""Up to this many approved migrations are listed one per line; more are summarised in one."""


@dataclass(frozen=True, slots=True)
class GateReport:
    """Every gate passed: who said so, when, and what they approved."""

    validation_run_id: str
    validation_agent_id: str
    validated_at: datetime
    verdict_id: str
    validator_id: str
    verdict_at: datetime
    digests: ArtifactDigests
    approved_migrations: Mapping[str, str]
    """Migration file name -> sha256: the only migrations the runner may run."""
    max_age_hours: float
    age_hours: float
    provenance: Provenance
    """The SQLAgent record behind every migration file."""
    warnings: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        """One line per gate, then the approved migrations and any warning (plan mode and the summary)."""
        d = self.digests
        lines = [
            f"gate validation: passed (run {self.validation_run_id} by {self.validation_agent_id}, "
            f"finished {self.validated_at.isoformat()}, {self.age_hours:.1f} h old, limit {self.max_age_hours:g} h)",
            f"gate compliance: passed (verdict {self.verdict_id} by {self.validator_id}: compliant, "
            f"decided {self.verdict_at.isoformat()})",
            f"gate artifacts: passed ({len(d.migrations)} migration(s), {len(d.modules)} Odoo module(s), "
            f"image {d.image or 'none'}{'' if d.image is None or d.image_pinned else ' (tag, not pinned)'}: "
            "identical to the validated and approved digests)",
        ]
        lines += self.provenance.describe()
        approved = self.approved_migrations
        if len(approved) <= LISTED_APPROVALS:
            lines += [f"approved migration {name}: sha256 {sha}" for name, sha in approved.items()]
        else:
            # Thousands of files on record would bury the log: each one's digest is in the result's artifacts.
            lines.append(f"approved migrations: {len(approved)} files, each with exactly its sha256 (see artifacts)")
        lines += [f"Odoo module {path}: tree digest {digest}" for path, digest in d.modules]
        if d.app_spec is not None:
            lines.append(f"app spec {d.app_spec[0]}: sha256 {d.app_spec[1]}")
        lines += [f"app spec value ${{{name}}}: {digest}" for name, digest in d.app_spec_values]
        lines += [f"component image {name}: {value}" for name, value in d.component_images]
        lines += [f"warning: {warning}" for warning in self.warnings]
        return lines

    def to_dict(self) -> dict[str, Any]:
        """For the result JSON (an additive top-level field). The digests are the result's `artifacts`, not
        repeated here; past LISTED_APPROVALS the approved set, which the artifacts gate held to be exactly
        the deployed migrations, is counted instead of listed a second time (thousands of files on record)."""
        approved: dict[str, Any] = {}
        if len(self.approved_migrations) <= LISTED_APPROVALS:
            approved["approved_migrations"] = dict(self.approved_migrations)
        else:
            approved["approved_migrations_count"] = len(self.approved_migrations)
            approved["approved_migrations_listed_in"] = "artifacts.migrations"
        return {
            "validation_run_id": self.validation_run_id,
            "validation_agent_id": self.validation_agent_id,
            "validated_at": self.validated_at.isoformat(),
            "verdict_id": self.verdict_id,
            "validator_id": self.validator_id,
            "verdict_at": self.verdict_at.isoformat(),
            **approved,
            "sqlagent": self.provenance.to_dict(),
            "warnings": list(self.warnings),
        }


def check_gates(
    run_id: str | None,
    digests: ArtifactDigests,
    source: VerdictSource,
    config: GatesConfig,
    *,
    now: datetime | None = None,
) -> GateReport:
    """Decide whether this deploy may proceed. Reads the store only.

    Returns the GateReport when every gate passes. Raises GateError (exit 3) with `gate` one of
    `validation`, `compliance`, `artifacts`, `provenance`, `store` and `facts` naming the run, the
    artifact and both digests. `now` (timezone-aware; default: the current UTC time) is the clock the age gate uses.
    """
    now = now or datetime.now(UTC)
    if not run_id:
        raise GateError(
            "gate validation: no validation run id; pass the ValidationAgent's run id as the "
            "`validation-run-id` input (or `validation_run_id` in the config). There is no way to deploy without one.",
            gate="validation",
            facts={"run_id": ""},
        )
    run = source.validation_run(run_id)
    facts = {"run_id": run_id, "store": source.describe()}
    if run is None:
        raise GateError(
            f"gate validation: there is no validation run {run_id!r} in the pipeline store ({source.describe()}); "
            "check the id the ValidationAgent reported",
            gate="validation",
            facts=facts,
        )
    if run.id != run_id:
        raise GateError(
            f"gate validation: asked the store for run {run_id!r}, it answered with run {run.id!r}; refusing",
            gate="validation",
            facts={**facts, "answered_run_id": run.id},
        )
    if run.agent_id != VALIDATION_AGENT_ID:
        raise GateError(
            f"gate validation: run {run_id} was recorded by {run.agent_id!r}, not the ValidationAgent "
            f"({VALIDATION_AGENT_ID}); only its runs count",
            gate="validation",
            facts={**facts, "agent_id": run.agent_id},
        )
    if run.status != "passed":
        raise GateError(
            f"gate validation: run {run_id} has status {run.status!r}, not 'passed'; "
            "fix the failures and deploy with the id of a passed run",
            gate="validation",
            facts={**facts, "status": run.status},
        )
    validated_at = run.finished_at or run.created_at
    age = now - validated_at
    limit = timedelta(hours=config.max_age_hours)
    if age > limit:
        raise GateError(
            f"gate validation: run {run_id} finished {validated_at.isoformat()}, {age.total_seconds() / 3600:.1f} h "
            f"ago, older than gates.max_age_hours ({config.max_age_hours:g} h); validate again and deploy "
            "with the new run id",
            gate="validation",
            facts={**facts, "validated_at": validated_at.isoformat()},
        )
    if age < -_CLOCK_SKEW:
        raise GateError(
            f"gate validation: run {run_id} is stamped {validated_at.isoformat()}, in the future; "
            "check the ValidationAgent's clock",
            gate="validation",
            facts={**facts, "validated_at": validated_at.isoformat()},
        )
    _refuse_unpinned_components(run_id, digests)
    _refuse_differences(run_id, "validation run", run.digests, digests)

    verdict = source.compliance_verdict(run_id)
    if verdict is None:
        raise GateError(
            f"gate compliance: run {run_id} has no verdict from the ComplianceValidator ({COMPLIANCE_VALIDATOR_ID}); "
            "the compliance gate is absolute, wait for its verdict",
            gate="compliance",
            facts=facts,
        )
    verdict_facts = {**facts, "verdict_id": verdict.id, "validator_id": verdict.validator_id}
    if verdict.validation_run_id != run_id:
        raise GateError(
            f"gate compliance: verdict {verdict.id} is for run {verdict.validation_run_id!r}, not for {run_id!r}; "
            "a verdict only covers the run it was given on",
            gate="compliance",
            facts={**verdict_facts, "verdict_run_id": verdict.validation_run_id},
        )
    if verdict.validator_id != COMPLIANCE_VALIDATOR_ID:
        raise GateError(
            f"gate compliance: verdict {verdict.id} on run {run_id} comes from {verdict.validator_id!r}, not the "
            f"ComplianceValidator ({COMPLIANCE_VALIDATOR_ID}); only its verdicts count",
            gate="compliance",
            facts=verdict_facts,
        )
    if verdict.verdict != "compliant":
        reason = f" ({verdict.reason})" if verdict.reason else ""
        raise GateError(
            f"gate compliance: verdict {verdict.id} on run {run_id} is {verdict.verdict!r}{reason}, not 'compliant'; "
            "the compliance gate is absolute",
            gate="compliance",
            facts={**verdict_facts, "verdict": verdict.verdict},
        )
    _refuse_differences(run_id, f"compliance verdict {verdict.id}", verdict.digests, digests)
    provenance = check_provenance(
        digests, validated=run.digests, approved=verdict.digests, source=source, run_id=run_id, verdict_id=verdict.id
    )

    warning = image_warning(digests)
    report = GateReport(
        validation_run_id=run_id,
        validation_agent_id=run.agent_id,
        validated_at=validated_at,
        verdict_id=verdict.id,
        validator_id=verdict.validator_id,
        verdict_at=verdict.decided_at,
        digests=vouched_commit(digests, run.digests, verdict.digests),
        approved_migrations=MappingProxyType(
            {path.rsplit("/", 1)[-1]: sha for path, sha in verdict.digests.migrations}
        ),
        max_age_hours=config.max_age_hours,
        age_hours=max(0.0, age.total_seconds() / 3600),
        provenance=provenance,
        warnings=(warning,) if warning else (),
    )
    return report


def open_source(config: DeployConfig, env: Mapping[str, str]) -> VerdictSource:
    """The verdict source `config.gates` names, its DSN defaulting to `credentials.db_connection_env_var`.

    Raises ConfigError naming the missing setting or environment variable.
    """
    return open_verdict_source(config.gates, env, default_dsn_env_var=config.credentials.db_connection_env_var)


def _refuse_unpinned_components(run_id: str, digests: ArtifactDigests) -> None:
    """A component image given by tag is refused even when the tag matches: App Platform pulls
    whatever the tag names at deploy time, which is not necessarily what was validated."""
    tagged = [(name, value) for name, value in digests.component_images if name.startswith("IMAGE_TAG_")]
    if not tagged:
        return
    listed = ", ".join(f"{name}={value}" for name, value in tagged)
    first = tagged[0][0]
    raise GateError(
        f"gate artifacts: {listed}: a tag can be moved to other content, so the gate cannot vouch for what "
        f"App Platform would pull; pass the image's digest as IMAGE_DIGEST_{first.removeprefix('IMAGE_TAG_')} "
        "(sha256:<hex>, shown by `docker buildx imagetools inspect <image>` or `doctl registry repository "
        "list-tags`) and have the ValidationAgent record it",
        gate="artifacts",
        facts={"run_id": run_id, "artifact": first, "kind": "component_image", "change": "unpinned"},
    )


def _refuse_differences(run_id: str, against: str, expected: ArtifactDigests, actual: ArtifactDigests) -> None:
    differences = compare_digests(expected, actual)
    if not differences:
        return
    first: DigestDifference = differences[0]
    details = "\n".join(f"  - {d.describe()}" for d in differences)
    raise GateError(
        f"gate artifacts: {len(differences)} artifact(s) differ from those in the {against} for run {run_id}:\n"
        f"{details}\n"
        "Deploy exactly what was validated, or validate (and have approved) what you mean to deploy.",
        gate="artifacts",
        facts={
            "run_id": run_id,
            "against": against,
            "artifact": first.path,
            "kind": first.kind,
            "change": first.change,
            "expected": first.expected or "",
            "actual": first.actual or "",
            "differences": "; ".join(d.describe() for d in differences),
        },
    )
