"""Migration provenance: only what the SQLAgent (agent_004) produced, byte for byte, may run.

The seed's boundary "Migrations from: SQLAgent (agent_004)". The SQLAgent writes one record per
migration it produces (table `sqlagent_migrations`, DDL in `schema/pipeline-store.sql`): the `V`
file's name, version and sha256, its undo script's name and sha256 (none for an irreversible
migration), its own run id, its agent id and when. The gate (`check_provenance`, called by
`gates.check_gates`) holds every migration file of the deploy against those records:

- each file (`V` or `U`) needs a record with exactly its sha256, and every record with that
  sha256 must come from `agent_004`: a file nobody recorded, a file changed after the SQLAgent
  recorded it, and a file some other agent claims are all refused;
- the SQLAgent runs that vouch for the deploy must have produced nothing else: a file they
  produced that the validation run and the compliance verdict did not cover (with the same
  sha256) is refused too, so the validated, the approved and the produced sets are one set.

An applied migration is held to this as well as a pending one: its undo script may run in a
later rollback. `check_undo_provenance` does the same for the undo scripts a manual rollback
would run. A refusal is a `GateError(gate="provenance")` listing every such file with both
digests. There is no way to skip this gate (`tests/gates/test_no_override.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from orchestrator.artifacts import ArtifactDigests
from orchestrator.contract import MigrationProvenance, MigrationResult
from orchestrator.errors import GateError
from orchestrator.migrations.scripts import parse_name, version_key
from orchestrator.sqlagent_records import SqlAgentRecord, SqlAgentRecords

__all__ = [
    "LISTED_FILES",
    "SQLAGENT_ID",
    "Provenance",
    "RequiredRecord",
    "SqlAgentRecord",
    "SqlAgentRecords",
    "attach_provenance",
    "check_provenance",
    "check_undo_provenance",
    "planned_lines",
    "required_lines",
    "required_records",
]

SQLAGENT_ID = "agent_004"
LISTED_FILES = 20
"""Past this many files, a log names how many instead of one line each (the result lists them all)."""

FileKind = Literal["migration", "undo"]


@dataclass(frozen=True, slots=True)
class RequiredRecord:
    """What the SQLAgent must have recorded for one `V` file of this deploy (plan mode, `digests`)."""

    filename: str
    version: str
    sha256: str
    undo_filename: str | None
    undo_sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "version": self.version,
            "sha256": self.sha256,
            "undo_filename": self.undo_filename,
            "undo_sha256": self.undo_sha256,
            "agent_id": SQLAGENT_ID,
        }

    def describe(self) -> str:
        undo = f"undo {self.undo_filename} sha256 {self.undo_sha256}" if self.undo_filename else "no undo"
        return f"{self.filename} (version {self.version}) sha256 {self.sha256}; {undo}"


@dataclass(frozen=True, slots=True)
class Provenance:
    """The SQLAgent's record behind every migration file of a deploy that passed the gate."""

    files: Mapping[str, MigrationProvenance]
    """File name -> the record vouching for exactly its sha256 (newest of them)."""
    sqlagent_run_ids: tuple[str, ...]

    def describe(self) -> list[str]:
        runs = ", ".join(self.sqlagent_run_ids) or "none"
        lines = [
            f"gate provenance: passed ({len(self.files)} migration file(s), each recorded with exactly its "
            f"sha256 by the SQLAgent ({SQLAGENT_ID}) in run(s) {runs}, and nothing else produced by them)"
        ]
        if len(self.files) > LISTED_FILES:
            # Thousands of files on record would bury the log: each one's record is in the result's `gates.sqlagent`.
            lines.append(f"migrations: {len(self.files)} files, each with its SQLAgent record (see gates.sqlagent)")
            return lines
        lines += [
            f"migration {name}: sha256 {p.sha256} produced by {p.agent_id} in SQLAgent run {p.sqlagent_run_id} "
            f"(record {p.record_id}, {p.recorded_at})"
            for name, p in sorted(self.files.items())
        ]
        return lines

    def to_dict(self) -> dict[str, Any]:
        """For the result's `gates.sqlagent`. Past LISTED_FILES the records are counted, not listed: each
        file's record is in the lineage (`pipeline_lineage.migration_provenance`), and listing thousands
        of them here made the result four times the size of its digests, redacted and written twice a run."""
        if len(self.files) > LISTED_FILES:
            return {
                "sqlagent_run_ids": list(self.sqlagent_run_ids),
                "files_count": len(self.files),
                "files_listed_in": "pipeline_lineage.migration_provenance",
            }
        return {
            "sqlagent_run_ids": list(self.sqlagent_run_ids),
            "files": {
                name: {
                    "sha256": p.sha256,
                    "sqlagent_run_id": p.sqlagent_run_id,
                    "agent_id": p.agent_id,
                    "recorded_at": p.recorded_at,
                    "record_id": p.record_id,
                }
                for name, p in sorted(self.files.items())
            },
        }


def required_records(digests: ArtifactDigests) -> tuple[RequiredRecord, ...]:
    """One record per `V` file of `digests`, with its undo script when the deploy carries one."""
    by_name = {path.rsplit("/", 1)[-1]: sha for path, sha in digests.migrations}
    undos: dict[tuple[int, ...], tuple[str, str]] = {}
    versioned: list[tuple[tuple[int, ...], str, str, str]] = []
    for name, sha in by_name.items():
        parsed = parse_name(name)
        if parsed is None:
            continue
        kind, version = parsed
        if kind == "undo":
            undos[version_key(version)] = (name, sha)
        else:
            versioned.append((version_key(version), version, name, sha))
    records = []
    for key, version, name, sha in sorted(versioned):
        undo = undos.get(key)
        records.append(RequiredRecord(name, version, sha, undo[0] if undo else None, undo[1] if undo else None))
    return tuple(records)


def required_lines(digests: ArtifactDigests) -> list[str]:
    """What the SQLAgent must have recorded for this deploy, one line per `V` file (plan mode, the summary)."""
    return [f"SQLAgent ({SQLAGENT_ID}) must have recorded {r.describe()}" for r in required_records(digests)]


def planned_lines(digests: ArtifactDigests) -> list[str]:
    """`required_lines` as the plan (the log, the result and the summary) shows them: for more than
    LISTED_FILES one line, since every digest is in the result's `artifacts` already."""
    required = required_records(digests)
    if len(required) <= LISTED_FILES:
        return [f"SQLAgent ({SQLAGENT_ID}) must have recorded {r.describe()}" for r in required]
    return [
        f"SQLAgent ({SQLAGENT_ID}) must have recorded {len(required)} migrations, each with exactly its sha256 "
        "(the result's artifacts.migrations; `deploy-orchestrator digests` prints each record)"
    ]


def check_provenance(
    digests: ArtifactDigests,
    *,
    validated: ArtifactDigests,
    approved: ArtifactDigests,
    source: SqlAgentRecords,
    run_id: str,
    verdict_id: str,
) -> Provenance:
    """Hold every migration file of `digests` against the SQLAgent's records (rules in the module docstring).

    `validated` and `approved` are the digests of the validation run and the compliance verdict.
    Reads `source` only. Raises GateError(gate="provenance") listing every refused file.
    """
    deployed = _by_name(digests)
    if not deployed:
        return Provenance(files={}, sqlagent_run_ids=())
    records = source.sqlagent_matches(deployed)
    matched = {name for r in records for name, sha in r.files().items() if deployed.get(name) == sha}
    if unmatched := sorted(set(deployed) - matched):
        # Refused: the message names what the SQLAgent recorded for the file instead, so read all of that.
        known = {r.id for r in records}
        records += [r for r in source.sqlagent_records(unmatched) if r.id not in known]
    files, problems = _match(deployed, records)
    # A file refused above is listed once, not again as a difference from the runs' output.
    refused = set(deployed) - set(files)
    runs = tuple(sorted({p.sqlagent_run_id for p in files.values()}))
    covered, allowed = _by_name(validated), _by_name(approved)
    for sqlagent_run_id in runs:
        produced = _produced(sqlagent_run_id, source.sqlagent_run(sqlagent_run_id))
        for name, sha in sorted(produced.items()):
            if (allowed.get(name) == sha and covered.get(name) == sha) or name in refused:
                continue
            refused.add(name)
            problems.append(
                f"{name}: SQLAgent run {sqlagent_run_id} produced it with sha256 {sha}, but the compliance "
                f"verdict {verdict_id} approved {_or_nothing(allowed.get(name))} and the validation run {run_id} "
                f"covered {_or_nothing(covered.get(name))}: the approved set must be exactly what the SQLAgent "
                "produced"
            )
    if problems:
        raise _refusal(problems, run_id=run_id, source=source)
    return Provenance(files=files, sqlagent_run_ids=runs)


def check_undo_provenance(undos: Mapping[str, str], source: SqlAgentRecords) -> dict[str, MigrationProvenance]:
    """For a manual rollback: each undo script (file name -> sha256) that would run needs the SQLAgent's record.

    Reads `source` only. Raises GateError(gate="provenance") listing every refused script.
    """
    if not undos:
        return {}
    files, problems = _match(dict(undos), source.sqlagent_records(sorted(undos)))
    if problems:
        raise _refusal(problems, run_id="", source=source)
    return files


def attach_provenance(
    results: Iterable[MigrationResult], provenance: Mapping[str, MigrationProvenance]
) -> tuple[MigrationResult, ...]:
    """The results with the SQLAgent record of the file each one ran (for the result and the summary)."""
    return tuple(
        replace(r, provenance=provenance[r.filename]) if r.filename in provenance and r.provenance is None else r
        for r in results
    )


def _match(
    deployed: Mapping[str, str], records: Sequence[SqlAgentRecord]
) -> tuple[dict[str, MigrationProvenance], list[str]]:
    files: dict[str, MigrationProvenance] = {}
    problems: list[str] = []
    # Indexed once by file name: matching each file against every record was quadratic (minutes at 6,000 files).
    naming: dict[str, list[SqlAgentRecord]] = {}
    for record in records:
        for filename in record.files():
            naming.setdefault(filename, []).append(record)
    for name, sha in sorted(deployed.items()):
        parsed = parse_name(name)
        kind: FileKind = "undo" if parsed is not None and parsed[0] == "undo" else "migration"
        candidates = naming.get(name, [])
        matching = [r for r in candidates if r.digest_of(name) == sha]
        if not matching:
            problems.append(_unrecorded(name, kind, sha, candidates))
            continue
        foreign = sorted({r.agent_id for r in matching if r.agent_id != SQLAGENT_ID})
        if foreign:
            claim = min((r for r in matching if r.agent_id != SQLAGENT_ID), key=lambda r: (r.recorded_at, r.id))
            problems.append(
                f"{name}: sha256 {sha} in the deploy; recorded with sha256 {claim.digest_of(name)} by "
                f"{', '.join(repr(a) for a in foreign)} ({claim.describe()}), not by the SQLAgent ({SQLAGENT_ID}): "
                "only its records count, and another agent claiming the file leaves its origin in doubt"
            )
            continue
        chosen = max(matching, key=lambda r: (r.recorded_at, r.id))
        if parsed is not None and _version(chosen.version) != version_key(parsed[1]):
            problems.append(
                f"{name}: sha256 {sha} matches the SQLAgent record {chosen.id} ({chosen.describe()}), but that "
                f"record is for version {chosen.version}, not {parsed[1]}"
            )
            continue
        files[name] = chosen.provenance(name)
    return files, problems


def _unrecorded(name: str, kind: FileKind, sha: str, candidates: Sequence[SqlAgentRecord]) -> str:
    what = "undo script" if kind == "undo" else "migration"
    if not candidates:
        return (
            f"{name}: sha256 {sha} in the deploy; the SQLAgent has no record of this {what} at all "
            "(recorded: nothing). Only migrations the SQLAgent produced may run"
        )
    newest = max(candidates, key=lambda r: (r.recorded_at, r.id))
    return (
        f"{name}: sha256 {sha} in the deploy, but the SQLAgent recorded sha256 {newest.digest_of(name)} "
        f"({newest.describe()}): the {what} changed after the SQLAgent produced it"
    )


def _produced(sqlagent_run_id: str, records: Sequence[SqlAgentRecord]) -> dict[str, str]:
    produced: dict[str, str] = {}
    for record in sorted(records, key=lambda r: (r.recorded_at, r.id)):
        if record.sqlagent_run_id == sqlagent_run_id:
            produced.update(record.files())
    return produced


def _refusal(problems: Sequence[str], *, run_id: str, source: SqlAgentRecords) -> GateError:
    details = "\n".join(f"  - {p}" for p in problems)
    return GateError(
        f"gate provenance: {len(problems)} migration file(s) are not exactly what the SQLAgent ({SQLAGENT_ID}) "
        f"produced ({source.describe()}):\n{details}\n"
        "Only migrations the SQLAgent produced, unchanged, may run: have it produce and record them "
        "(`deploy-orchestrator digests` prints what it must record), then validate and approve that set.",
        gate="provenance",
        facts={
            "run_id": run_id,
            "store": source.describe(),
            "artifact": problems[0].split(":", 1)[0],
            "files": "; ".join(problems),
        },
    )


def _by_name(digests: ArtifactDigests) -> dict[str, str]:
    return {path.rsplit("/", 1)[-1]: sha for path, sha in digests.migrations}


def _or_nothing(sha: str | None) -> str:
    return f"sha256 {sha}" if sha else "nothing"


def _version(text: str) -> tuple[int, ...] | None:
    try:
        return version_key(text)
    except ValueError:
        return None
