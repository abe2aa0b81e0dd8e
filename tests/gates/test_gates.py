"""The gate decision against a real pipeline store: every refusal, and the report when all pass."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.artifacts import ArtifactDigests, digest_artifacts
from orchestrator.contract import Artifacts, GatesConfig
from orchestrator.errors import GateError
from orchestrator.gates import GateReport, check_gates
from orchestrator.redaction import Secret
from orchestrator.store import ComplianceVerdict, DatabaseVerdicts, HttpVerdicts, ValidationRun
from orchestrator.store_seed import seed_verdicts
from tests.peers.http import HttpPeer, Reply
from tests.peers.verdicts import VerdictService, seed_passed, silent_server

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
FINISHED = NOW - timedelta(hours=2)
CONFIG = GatesConfig(max_age_hours=24)


@pytest.fixture
def digests(workspace: Path, artifacts: Artifacts) -> ArtifactDigests:
    return digest_artifacts(artifacts, workspace)


@pytest.fixture
def source(store_dsn: str) -> DatabaseVerdicts:
    return DatabaseVerdicts(Secret(store_dsn), timeout=5)


def _refusal(run_id: str | None, digests: ArtifactDigests, source: object) -> GateError:
    with pytest.raises(GateError) as caught:
        check_gates(run_id, digests, source, CONFIG, now=NOW)  # type: ignore[arg-type]
    return caught.value


def test_all_gates_pass_and_the_report_names_everything(
    store_dsn: str, source: DatabaseVerdicts, digests: ArtifactDigests
) -> None:
    seed_passed(store_dsn, "run-42", digests, finished_at=FINISHED, decided_at=FINISHED, verdict_id="v-7")
    report = check_gates("run-42", digests, source, CONFIG, now=NOW)
    assert isinstance(report, GateReport)
    assert (report.validation_run_id, report.verdict_id, report.validator_id) == ("run-42", "v-7", "agent_002")
    assert report.verdict_at == FINISHED and report.validated_at == FINISHED
    assert dict(report.approved_migrations) == {
        "U1__init.sql": dict(digests.migrations)["db/migrations/U1__init.sql"],
        "V1__init.sql": dict(digests.migrations)["db/migrations/V1__init.sql"],
    }
    lines = report.describe()
    assert lines[0] == (
        f"gate validation: passed (run run-42 by agent_005, finished {FINISHED.isoformat()}, 2.0 h old, limit 24 h)"
    )
    assert lines[1] == f"gate compliance: passed (verdict v-7 by agent_002: compliant, decided {FINISHED.isoformat()})"
    assert lines[2] == (
        f"gate artifacts: passed (2 migration(s), 1 Odoo module(s), image {digests.image}: "
        "identical to the validated and approved digests)"
    )
    assert f"approved migration V1__init.sql: sha256 {dict(digests.migrations)['db/migrations/V1__init.sql']}" in lines
    assert report.warnings == ()
    assert report.to_dict()["approved_migrations"] == dict(report.approved_migrations)
    with pytest.raises(TypeError):
        report.approved_migrations["V9__evil.sql"] = "0" * 64  # type: ignore[index]


def test_no_run_id_is_refused(source: DatabaseVerdicts, digests: ArtifactDigests) -> None:
    for missing in (None, ""):
        error = _refusal(missing, digests, source)
        assert error.gate == "validation"
        assert error.exit_code == 3
        assert "no validation run id; pass the ValidationAgent's run id as the `validation-run-id` input" in str(error)


def test_forged_run_id_is_refused(store_dsn: str, source: DatabaseVerdicts, digests: ArtifactDigests) -> None:
    seed_passed(store_dsn, "run-42", digests, finished_at=FINISHED)
    error = _refusal("run-43", digests, source)
    assert error.gate == "validation"
    assert "there is no validation run 'run-43' in the pipeline store" in str(error)
    assert error.facts["run_id"] == "run-43"


def test_sql_in_the_run_id_is_refused_as_missing_and_drops_nothing(
    store_dsn: str, source: DatabaseVerdicts, digests: ArtifactDigests
) -> None:
    seed_passed(store_dsn, "run-42", digests, finished_at=FINISHED)
    error = _refusal("x'; DROP TABLE validation_runs; --", digests, source)
    assert error.gate == "validation"
    assert check_gates("run-42", digests, source, CONFIG, now=NOW).validation_run_id == "run-42"


@pytest.mark.parametrize("status", ["failed", "running", "error", "cancelled"])
def test_a_run_that_did_not_pass_is_refused(
    status: str, store_dsn: str, source: DatabaseVerdicts, digests: ArtifactDigests
) -> None:
    seed_passed(store_dsn, "run-42", digests, status=status, finished_at=FINISHED)
    error = _refusal("run-42", digests, source)
    assert error.gate == "validation"
    assert f"run run-42 has status '{status}', not 'passed'" in str(error)


def test_a_stale_run_is_refused(store_dsn: str, source: DatabaseVerdicts, digests: ArtifactDigests) -> None:
    seed_passed(store_dsn, "run-42", digests, finished_at=NOW - timedelta(hours=25))
    error = _refusal("run-42", digests, source)
    assert error.gate == "validation"
    assert "25.0 h ago, older than gates.max_age_hours (24 h); validate again" in str(error)


def test_a_run_stamped_in_the_future_is_refused(
    store_dsn: str, source: DatabaseVerdicts, digests: ArtifactDigests
) -> None:
    seed_passed(store_dsn, "run-42", digests, finished_at=NOW + timedelta(hours=3))
    assert "in the future" in str(_refusal("run-42", digests, source))


def test_a_run_by_another_agent_is_refused(store_dsn: str, source: DatabaseVerdicts, digests: ArtifactDigests) -> None:
    seed_passed(store_dsn, "run-42", digests, finished_at=FINISHED, agent_id="agent_999")
    error = _refusal("run-42", digests, source)
    assert error.gate == "validation"
    assert "recorded by 'agent_999', not the ValidationAgent (agent_005)" in str(error)


def test_a_missing_verdict_is_refused(store_dsn: str, source: DatabaseVerdicts, digests: ArtifactDigests) -> None:
    seed_passed(store_dsn, "run-42", digests, finished_at=FINISHED, verdict=None)
    error = _refusal("run-42", digests, source)
    assert error.gate == "compliance"
    assert "run run-42 has no verdict from the ComplianceValidator (agent_002)" in str(error)


@pytest.mark.parametrize("verdict", ["non_compliant", "needs_review"])
def test_a_verdict_other_than_compliant_is_refused(
    verdict: str, store_dsn: str, source: DatabaseVerdicts, digests: ArtifactDigests
) -> None:
    seed_passed(store_dsn, "run-42", digests, finished_at=FINISHED, verdict=verdict, verdict_id="v-1")
    error = _refusal("run-42", digests, source)
    assert error.gate == "compliance"
    assert f"verdict v-1 on run run-42 is '{verdict}', not 'compliant'; the compliance gate is absolute" in str(error)
    assert error.facts["verdict"] == verdict


def test_a_newer_non_compliant_verdict_revokes_an_older_compliant_one(
    store_dsn: str, source: DatabaseVerdicts, digests: ArtifactDigests
) -> None:
    seed_passed(store_dsn, "run-42", digests, finished_at=FINISHED, decided_at=FINISHED, verdict_id="v-1")
    seed_verdicts(
        store_dsn, "run-42", digests, finished_at=FINISHED, decided_at=FINISHED + timedelta(minutes=1),
        verdict="non_compliant", verdict_id="v-2",
    )  # fmt: skip
    error = _refusal("run-42", digests, source)
    assert error.gate == "compliance" and error.facts["verdict_id"] == "v-2"


def test_a_verdict_from_another_validator_is_refused(
    store_dsn: str, source: DatabaseVerdicts, digests: ArtifactDigests
) -> None:
    seed_passed(store_dsn, "run-42", digests, finished_at=FINISHED, validator_id="someone_else")
    error = _refusal("run-42", digests, source)
    assert error.gate == "compliance"
    assert "comes from 'someone_else', not the ComplianceValidator (agent_002)" in str(error)


def test_a_verdict_for_another_run_is_refused(http_peer: HttpPeer, digests: ArtifactDigests) -> None:
    service = VerdictService(http_peer)
    service.add_run(ValidationRun("run-42", "passed", "agent_005", FINISHED, FINISHED, digests))
    service.set_verdicts("run-42", [ComplianceVerdict("v-9", "run-41", "agent_002", "compliant", digests, FINISHED)])
    error = _refusal("run-42", digests, HttpVerdicts(http_peer.url, None, timeout=5))
    assert error.gate == "compliance"
    assert "verdict v-9 is for run 'run-41', not for 'run-42'" in str(error)


def test_a_store_answering_with_another_run_is_refused(http_peer: HttpPeer, digests: ArtifactDigests) -> None:
    run = ValidationRun("run-1", "passed", "agent_005", FINISHED, FINISHED, digests)
    http_peer.route("GET", "/validation-runs/run-42", Reply(200, run.to_dict()))
    error = _refusal("run-42", digests, HttpVerdicts(http_peer.url, None, timeout=5))
    assert error.gate == "validation"
    assert "asked the store for run 'run-42', it answered with run 'run-1'" in str(error)


def test_a_migration_edited_after_validation_is_refused_naming_both_digests(
    store_dsn: str, source: DatabaseVerdicts, workspace: Path, artifacts: Artifacts, digests: ArtifactDigests
) -> None:
    seed_passed(store_dsn, "run-42", digests, finished_at=FINISHED)
    (workspace / "db" / "migrations" / "V1__init.sql").write_text("CREATE TABLE orders (id int); DELETE FROM users;\n")
    edited = digest_artifacts(artifacts, workspace)
    before = dict(digests.migrations)["db/migrations/V1__init.sql"]
    after = dict(edited.migrations)["db/migrations/V1__init.sql"]
    error = _refusal("run-42", edited, source)
    assert error.gate == "artifacts"
    assert f"migration db/migrations/V1__init.sql: changed, validated {before}, now {after}" in str(error)
    assert "differ from those in the validation run for run run-42" in str(error)
    assert error.facts == {
        "run_id": "run-42",
        "against": "validation run",
        "artifact": "db/migrations/V1__init.sql",
        "kind": "migration",
        "change": "changed",
        "expected": before,
        "actual": after,
        "differences": f"migration db/migrations/V1__init.sql: changed, validated {before}, now {after}",
    }


def test_added_and_dropped_artifacts_are_refused(
    store_dsn: str, source: DatabaseVerdicts, workspace: Path, artifacts: Artifacts, digests: ArtifactDigests
) -> None:
    seed_passed(store_dsn, "run-42", digests, finished_at=FINISHED)
    (workspace / "db" / "migrations" / "V2__sneaky.sql").write_text("DROP TABLE users;\n")
    (workspace / "db" / "migrations" / "U1__init.sql").unlink()
    error = _refusal("run-42", digest_artifacts(artifacts, workspace), source)
    assert error.gate == "artifacts"
    assert "2 artifact(s) differ" in str(error)
    assert "migration db/migrations/U1__init.sql: dropped" in str(error)
    assert "migration db/migrations/V2__sneaky.sql: added" in str(error)


def test_an_odoo_module_changed_after_validation_is_refused(
    store_dsn: str, source: DatabaseVerdicts, workspace: Path, artifacts: Artifacts, digests: ArtifactDigests
) -> None:
    seed_passed(store_dsn, "run-42", digests, finished_at=FINISHED)
    (workspace / "addons" / "sale_extras" / "hook.py").write_text("import os; os.system('curl evil')\n")
    error = _refusal("run-42", digest_artifacts(artifacts, workspace), source)
    assert error.gate == "artifacts" and error.facts["kind"] == "module"
    assert error.facts["artifact"] == "addons/sale_extras"


def test_an_image_by_tag_is_refused_when_the_verdict_pinned_a_digest(
    store_dsn: str, source: DatabaseVerdicts, workspace: Path, artifacts: Artifacts, digests: ArtifactDigests
) -> None:
    seed_passed(store_dsn, "run-42", digests, finished_at=FINISHED)
    by_tag = digest_artifacts(artifacts, workspace, image="ghcr.io/acme/shop:1.4")
    error = _refusal("run-42", by_tag, source)
    assert error.gate == "artifacts"
    assert f"image image: changed, validated {digests.image}, now ghcr.io/acme/shop:1.4" in str(error)
    assert (error.facts["expected"], error.facts["actual"]) == (digests.image, "ghcr.io/acme/shop:1.4")


def test_an_image_by_tag_matching_a_tag_verdict_passes_with_a_warning(
    store_dsn: str, source: DatabaseVerdicts, workspace: Path, artifacts: Artifacts
) -> None:
    by_tag = digest_artifacts(artifacts, workspace, image="ghcr.io/acme/shop:1.4")
    seed_passed(store_dsn, "run-42", by_tag, finished_at=FINISHED)
    report = check_gates("run-42", by_tag, source, CONFIG, now=NOW)
    assert len(report.warnings) == 1 and "tags move" in report.warnings[0]
    assert "(tag, not pinned)" in report.describe()[2]
    assert report.describe()[-1].startswith("warning: image ghcr.io/acme/shop:1.4 is given by tag")


def test_artifacts_the_verdict_did_not_approve_are_refused(
    store_dsn: str, source: DatabaseVerdicts, digests: ArtifactDigests
) -> None:
    """The run validated V1 and U1, but compliance approved only V1: U1 is not approved, so no deploy."""
    approved = replace(digests, migrations=tuple(p for p in digests.migrations if "V1__" in p[0]))
    seed_passed(store_dsn, "run-42", digests, finished_at=FINISHED, verdict_digests=approved, verdict_id="v-3")
    error = _refusal("run-42", digests, source)
    assert error.gate == "artifacts"
    assert "differ from those in the compliance verdict v-3 for run run-42" in str(error)
    assert "migration db/migrations/U1__init.sql: added" in str(error)


def test_a_store_that_times_out_refuses_with_gate_store(digests: ArtifactDigests) -> None:
    with silent_server() as silent:
        error = _refusal("run-42", digests, HttpVerdicts(f"http://127.0.0.1:{silent.port}", None, timeout=0.3))
    assert error.gate == "store" and error.exit_code == 3


def test_now_defaults_to_the_current_time(store_dsn: str, source: DatabaseVerdicts, digests: ArtifactDigests) -> None:
    seed_passed(store_dsn, "run-42", digests)
    assert check_gates("run-42", digests, source, CONFIG).age_hours < 0.1


def test_many_approved_migrations_are_summarised_in_one_line(store_dsn: str, source: DatabaseVerdicts) -> None:
    many = tuple((f"db/V{n}__t{n}.sql", f"{n:064x}") for n in range(1, 31))
    digests = ArtifactDigests(migrations=many, modules=(), image=None, image_pinned=False)
    seed_passed(store_dsn, "run-many", digests, finished_at=FINISHED, decided_at=FINISHED)
    lines = check_gates("run-many", digests, source, CONFIG, now=NOW).describe()
    assert "approved migrations: 30 files, each with exactly its sha256 (see artifacts)" in lines
    assert not any(line.startswith("approved migration V") for line in lines)
