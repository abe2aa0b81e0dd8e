"""The SQLAgent provenance gate against a real pipeline store and the real HTTP verdict service.

Every case runs twice: the records in PostgreSQL (`DatabaseVerdicts`) and served over HTTP
(`HttpVerdicts` against `VerdictService`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest

from orchestrator.artifacts import ArtifactDigests, digest_artifacts
from orchestrator.contract import Artifacts, GatesConfig
from orchestrator.errors import GateError
from orchestrator.gates import check_gates, check_undo_provenance
from orchestrator.redaction import Secret
from orchestrator.sqlagent import SQLAGENT_ID, required_lines
from orchestrator.store import ComplianceVerdict, DatabaseVerdicts, HttpVerdicts, ValidationRun, VerdictSource
from orchestrator.store_seed import seed_sqlagent_records, seed_verdicts
from tests.peers.http import HttpPeer, Reply
from tests.peers.verdicts import VerdictService, sqlagent_records_for

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
RECORDED = NOW - timedelta(hours=3)
CONFIG = GatesConfig(max_age_hours=24)


@dataclass
class Store:
    """One pipeline store, written as the upstream agents would, read as the gates do."""

    kind: str
    source: VerdictSource
    dsn: str | None = None
    service: VerdictService | None = None

    def record(self, digests: ArtifactDigests, sqlagent_run_id: str, *, agent_id: str = SQLAGENT_ID) -> None:
        """The SQLAgent (or `agent_id`) records the V files of `digests` and their undo scripts."""
        if self.dsn is not None:
            seed_sqlagent_records(
                self.dsn, digests, sqlagent_run_id=sqlagent_run_id, agent_id=agent_id, recorded_at=RECORDED
            )
        else:
            assert self.service is not None
            self.service.add_sqlagent_records(
                sqlagent_records_for(digests, sqlagent_run_id, agent_id=agent_id, recorded_at=RECORDED)
            )

    def approve(self, run_id: str, digests: ArtifactDigests) -> None:
        """A passed validation run and a compliant verdict for `digests`, and nothing from the SQLAgent."""
        verdict_id = f"v-{run_id}"
        if self.dsn is not None:
            seed_verdicts(self.dsn, run_id, digests, finished_at=RECORDED, decided_at=RECORDED, verdict_id=verdict_id)
        else:
            assert self.service is not None
            self.service.add_run(ValidationRun(run_id, "passed", "agent_005", RECORDED, RECORDED, digests))
            verdict = ComplianceVerdict(verdict_id, run_id, "agent_002", "compliant", digests, RECORDED)
            self.service.set_verdicts(run_id, [verdict])


@pytest.fixture(params=["database", "http"])
def store(request: pytest.FixtureRequest, store_dsn: str) -> Iterator[Store]:
    if request.param == "database":
        yield Store("database", DatabaseVerdicts(Secret(store_dsn), timeout=5), dsn=store_dsn)
        return
    peer = HttpPeer()
    try:
        service = VerdictService(peer)
        yield Store("http", HttpVerdicts(peer.url, None, timeout=5), service=service)
    finally:
        peer.close()


def _digests(workspace: Path) -> ArtifactDigests:
    return digest_artifacts(Artifacts(odoo_modules=(), migrations=(Path("db/migrations"),)), workspace)


def _refusal(store: Store, digests: ArtifactDigests, run_id: str = "run-1") -> GateError:
    with pytest.raises(GateError) as caught:
        check_gates(run_id, digests, store.source, CONFIG, now=NOW)
    assert caught.value.exit_code == 3
    assert caught.value.gate == "provenance", str(caught.value)
    return caught.value


def _sha(digests: ArtifactDigests, name: str) -> str:
    return dict(digests.migrations)[f"db/migrations/{name}"]


def test_migrations_the_sqlagent_produced_pass_and_name_its_run(store: Store, workspace: Path) -> None:
    digests = _digests(workspace)
    store.record(digests, "sqlagent-7")
    store.approve("run-1", digests)
    report = check_gates("run-1", digests, store.source, CONFIG, now=NOW)
    assert report.provenance.sqlagent_run_ids == ("sqlagent-7",)
    assert set(report.provenance.files) == {"V1__init.sql", "U1__init.sql"}
    v1 = report.provenance.files["V1__init.sql"]
    assert (v1.sha256, v1.agent_id, v1.sqlagent_run_id) == (_sha(digests, "V1__init.sql"), "agent_004", "sqlagent-7")
    assert report.provenance.files["U1__init.sql"].sha256 == _sha(digests, "U1__init.sql")
    lines = report.describe()
    assert any(
        line.startswith("gate provenance: passed (2 migration file(s)") and "sqlagent-7" in line for line in lines
    )
    assert f"migration V1__init.sql: sha256 {v1.sha256} produced by agent_004 in SQLAgent run sqlagent-7" in "\n".join(
        lines
    )
    assert report.to_dict()["sqlagent"]["sqlagent_run_ids"] == ["sqlagent-7"]


def test_past_twenty_files_the_report_counts_the_records_it_holds(store: Store, workspace: Path) -> None:
    folder = workspace / "db" / "migrations"
    for n in range(2, 12):
        (folder / f"V{n}__t{n}.sql").write_text(f"CREATE TABLE t{n} (id bigint);\n")
        (folder / f"U{n}__t{n}.sql").write_text(f"DROP TABLE t{n};\n")
    digests = _digests(workspace)
    store.record(digests, "sqlagent-7")
    store.approve("run-1", digests)
    report = check_gates("run-1", digests, store.source, CONFIG, now=NOW)
    assert len(report.provenance.files) == 22
    assert report.to_dict()["sqlagent"] == {
        "sqlagent_run_ids": ["sqlagent-7"],
        "files_count": 22,
        "files_listed_in": "pipeline_lineage.migration_provenance",
    }


def test_a_migration_with_no_sqlagent_record_is_refused(store: Store, workspace: Path) -> None:
    digests = _digests(workspace)
    store.approve("run-1", digests)
    error = _refusal(store, digests)
    text = str(error)
    assert "2 migration file(s) are not exactly what the SQLAgent (agent_004) produced" in text
    for name in ("V1__init.sql", "U1__init.sql"):
        assert f"{name}: sha256 {_sha(digests, name)} in the deploy; the SQLAgent has no record" in text
    assert "recorded: nothing" in text
    assert "deploy-orchestrator digests" in text
    assert error.facts["artifact"] == "U1__init.sql"


def test_a_migration_recorded_by_another_agent_is_refused(store: Store, workspace: Path) -> None:
    digests = _digests(workspace)
    store.record(digests, "impostor-1", agent_id="agent_009")
    store.approve("run-1", digests)
    text = str(_refusal(store, digests))
    sha = _sha(digests, "V1__init.sql")
    assert f"V1__init.sql: sha256 {sha} in the deploy; recorded with sha256 {sha} by 'agent_009'" in text
    assert "not by the SQLAgent (agent_004)" in text


def test_another_agent_claiming_a_file_the_sqlagent_recorded_is_refused(store: Store, workspace: Path) -> None:
    digests = _digests(workspace)
    store.record(digests, "sqlagent-1")
    store.record(digests, "impostor-1", agent_id="agent_009")
    store.approve("run-1", digests)
    assert "by 'agent_009'" in str(_refusal(store, digests))


def test_a_migration_changed_after_the_sqlagent_recorded_it_is_refused(store: Store, workspace: Path) -> None:
    recorded = _digests(workspace)
    store.record(recorded, "sqlagent-1")
    path = workspace / "db" / "migrations" / "V1__init.sql"
    path.write_text(path.read_text() + "UPDATE orders SET id = id;\n")
    edited = _digests(workspace)
    store.approve("run-1", edited)  # validated and approved as edited: only the SQLAgent's record is missing
    text = str(_refusal(store, edited))
    assert (
        f"V1__init.sql: sha256 {_sha(edited, 'V1__init.sql')} in the deploy, but the SQLAgent recorded sha256 "
        f"{_sha(recorded, 'V1__init.sql')} (run sqlagent-1 by agent_004" in text
    )
    assert "the migration changed after the SQLAgent produced it" in text
    assert "1 migration file(s)" in text  # the untouched undo script is not listed


def test_an_undo_script_that_differs_from_the_record_is_refused(store: Store, workspace: Path) -> None:
    recorded = _digests(workspace)
    store.record(recorded, "sqlagent-1")
    (workspace / "db" / "migrations" / "U1__init.sql").write_text("DROP TABLE orders CASCADE;\n")
    edited = _digests(workspace)
    store.approve("run-1", edited)
    text = str(_refusal(store, edited))
    assert (
        f"U1__init.sql: sha256 {_sha(edited, 'U1__init.sql')} in the deploy, but the SQLAgent recorded sha256 "
        f"{_sha(recorded, 'U1__init.sql')}" in text
    )
    assert "the undo script changed after the SQLAgent produced it" in text
    assert "V1__init.sql:" not in text


def test_a_verdict_and_a_sqlagent_record_that_disagree_are_refused(store: Store, workspace: Path) -> None:
    approved = _digests(workspace)
    migration = workspace / "db" / "migrations" / "V1__init.sql"
    original = migration.read_text()
    migration.write_text("CREATE TABLE orders (id bigint PRIMARY KEY);\n")
    store.record(_digests(workspace), "sqlagent-1")  # the SQLAgent produced other content than was approved
    produced = _digests(workspace)
    migration.write_text(original)
    store.approve("run-1", approved)
    text = str(_refusal(store, approved))
    assert (
        f"V1__init.sql: sha256 {_sha(approved, 'V1__init.sql')} in the deploy, but the SQLAgent recorded sha256 "
        f"{_sha(produced, 'V1__init.sql')}" in text
    )


def test_a_file_the_sqlagent_produced_but_the_verdict_did_not_approve_is_refused(store: Store, workspace: Path) -> None:
    folder = workspace / "db" / "migrations"
    (folder / "V2__more.sql").write_text("ALTER TABLE orders ADD COLUMN note text;\n")
    (folder / "U2__more.sql").write_text("ALTER TABLE orders DROP COLUMN note;\n")
    store.record(_digests(workspace), "sqlagent-1")
    produced = _digests(workspace)
    (folder / "V2__more.sql").unlink()
    (folder / "U2__more.sql").unlink()
    deployed = _digests(workspace)
    store.approve("run-1", deployed)
    error = _refusal(store, deployed)
    text = str(error)
    assert "2 migration file(s)" in text
    assert (
        f"V2__more.sql: SQLAgent run sqlagent-1 produced it with sha256 {_sha(produced, 'V2__more.sql')}, but the "
        "compliance verdict v-run-1 approved nothing and the validation run run-1 covered nothing" in text
    )
    assert "U2__more.sql: SQLAgent run sqlagent-1 produced it" in text


def test_a_file_the_verdict_approved_but_the_sqlagent_did_not_produce_is_refused(store: Store, workspace: Path) -> None:
    store.record(_digests(workspace), "sqlagent-1")
    (workspace / "db" / "migrations" / "V2__more.sql").write_text("ALTER TABLE orders ADD COLUMN note text;\n")
    (workspace / "db" / "migrations" / "U2__more.sql").write_text("ALTER TABLE orders DROP COLUMN note;\n")
    approved = _digests(workspace)
    store.approve("run-1", approved)
    text = str(_refusal(store, approved))
    assert "2 migration file(s)" in text
    assert f"V2__more.sql: sha256 {_sha(approved, 'V2__more.sql')} in the deploy; the SQLAgent has no record" in text
    assert "V1__init.sql:" not in text


def test_a_newer_sqlagent_run_producing_the_whole_set_again_vouches_alone(store: Store, workspace: Path) -> None:
    folder = workspace / "db" / "migrations"
    store.record(_digests(workspace), "sqlagent-1")
    (folder / "V2__more.sql").write_text("ALTER TABLE orders ADD COLUMN note text;\n")
    (folder / "U2__more.sql").write_text("ALTER TABLE orders DROP COLUMN note;\n")
    digests = _digests(workspace)
    if store.dsn is not None:
        seed_sqlagent_records(store.dsn, digests, sqlagent_run_id="sqlagent-2", recorded_at=NOW - timedelta(hours=1))
    else:
        assert store.service is not None
        store.service.add_sqlagent_records(
            sqlagent_records_for(digests, "sqlagent-2", recorded_at=NOW - timedelta(hours=1))
        )
    store.approve("run-1", digests)
    report = check_gates("run-1", digests, store.source, CONFIG, now=NOW)
    assert report.provenance.sqlagent_run_ids == ("sqlagent-2",)


def _record_at(store: Store, digests: ArtifactDigests, run: str, at: datetime, *, agent_id: str = SQLAGENT_ID) -> None:
    if store.dsn is not None:
        seed_sqlagent_records(store.dsn, digests, sqlagent_run_id=run, agent_id=agent_id, recorded_at=at)
    else:
        assert store.service is not None
        store.service.add_sqlagent_records(sqlagent_records_for(digests, run, agent_id=agent_id, recorded_at=at))


def test_a_set_recorded_again_at_every_deploy_is_vouched_for_by_its_newest_record(
    store: Store, workspace: Path
) -> None:
    digests = _digests(workspace)
    for n in range(1, 5):
        _record_at(store, digests, f"sqlagent-{n}", RECORDED + timedelta(minutes=n))
    store.approve("run-1", digests)
    report = check_gates("run-1", digests, store.source, CONFIG, now=NOW)
    assert report.provenance.sqlagent_run_ids == ("sqlagent-4",)
    assert {p.sqlagent_run_id for p in report.provenance.files.values()} == {"sqlagent-4"}


def test_an_older_claim_by_another_agent_is_refused_under_later_sqlagent_records(store: Store, workspace: Path) -> None:
    digests = _digests(workspace)
    _record_at(store, digests, "impostor-1", RECORDED - timedelta(hours=1), agent_id="agent_009")
    for n in range(1, 4):
        _record_at(store, digests, f"sqlagent-{n}", RECORDED + timedelta(minutes=n))
    _record_at(store, digests, "impostor-2", RECORDED + timedelta(hours=1), agent_id="agent_007")
    store.approve("run-1", digests)
    text = str(_refusal(store, digests))
    assert "by 'agent_007', 'agent_009' (run impostor-1 by agent_009" in text, text


def test_the_database_reads_only_the_records_that_decide_the_gate(store_dsn: str, workspace: Path) -> None:
    digests = _digests(workspace)
    for n in range(1, 5):
        seed_sqlagent_records(store_dsn, digests, sqlagent_run_id=f"sqlagent-{n}", recorded_at=RECORDED + timedelta(n))
    for n, agent in ((5, "agent_009"), (6, "agent_009"), (7, "agent_007")):
        seed_sqlagent_records(
            store_dsn, digests, sqlagent_run_id=f"other-{n}", agent_id=agent, recorded_at=RECORDED + timedelta(n)
        )
    path = workspace / "db" / "migrations" / "V1__init.sql"
    path.write_text(path.read_text() + "-- revised\n")
    revised = _digests(workspace)  # its undo script unchanged
    seed_sqlagent_records(store_dsn, revised, sqlagent_run_id="sqlagent-8", recorded_at=RECORDED + timedelta(8))
    deployed = {key.rsplit("/", 1)[-1]: sha for key, sha in digests.migrations}
    found = DatabaseVerdicts(Secret(store_dsn), timeout=5).sqlagent_matches(deployed)
    # Per file the newest of the SQLAgent's with exactly the deployed bytes (for V1 not the revision, for U1
    # the revision's record), and the oldest of each other agent's; nothing older.
    assert [r.sqlagent_run_id for r in found] == ["sqlagent-4", "other-5", "other-7", "sqlagent-8"]


def test_no_migrations_need_no_sqlagent_record(store: Store, tmp_path: Path) -> None:
    digests = digest_artifacts(
        Artifacts(odoo_modules=(), migrations=(), docker_image="ghcr.io/acme/shop@sha256:" + "ab" * 32), tmp_path
    )
    store.approve("run-1", digests)
    report = check_gates("run-1", digests, store.source, CONFIG, now=NOW)
    assert report.provenance.files == {} and report.provenance.sqlagent_run_ids == ()


def test_undo_scripts_a_manual_rollback_would_run_need_the_record(store: Store, workspace: Path) -> None:
    recorded = _digests(workspace)
    store.record(recorded, "sqlagent-1")
    undo = {"U1__init.sql": _sha(recorded, "U1__init.sql")}
    assert check_undo_provenance(undo, store.source)["U1__init.sql"].sqlagent_run_id == "sqlagent-1"
    with pytest.raises(GateError) as caught:
        check_undo_provenance({"U1__init.sql": "0" * 64}, store.source)
    assert caught.value.gate == "provenance"
    assert (
        f"U1__init.sql: sha256 {'0' * 64} in the deploy, but the SQLAgent recorded sha256 {undo['U1__init.sql']}"
        in (str(caught.value))
    )


def test_required_lines_say_what_the_sqlagent_must_record(workspace: Path) -> None:
    digests = _digests(workspace)
    assert required_lines(digests) == [
        f"SQLAgent (agent_004) must have recorded V1__init.sql (version 1) sha256 {_sha(digests, 'V1__init.sql')}; "
        f"undo U1__init.sql sha256 {_sha(digests, 'U1__init.sql')}"
    ]


def test_a_malformed_sqlagent_row_fails_closed(http_peer: HttpPeer, workspace: Path) -> None:
    digests = _digests(workspace)
    service = VerdictService(http_peer)
    service.add_passed("run-1", digests)
    http_peer.route("GET", "/sqlagent-migrations/V1__init.sql", Reply(200, [{"id": "x"}]))
    with pytest.raises(GateError) as caught:
        check_gates("run-1", digests, HttpVerdicts(http_peer.url, None, timeout=5), CONFIG)
    assert caught.value.gate == "store"
    assert "malformed SQLAgent record row" in str(caught.value)


def test_the_store_refuses_an_undo_file_without_its_digest(store_dsn: str) -> None:
    with psycopg2.connect(store_dsn) as conn, conn.cursor() as cur, pytest.raises(psycopg2.errors.CheckViolation):
        cur.execute(
            "INSERT INTO sqlagent_migrations (sqlagent_run_id, filename, version, sha256, undo_filename)"
            " VALUES ('s-1', 'V1__a.sql', '1', %s, 'U1__a.sql')",
            ("a" * 64,),
        )
    conn.close()
