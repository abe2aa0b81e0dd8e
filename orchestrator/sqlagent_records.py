"""The SQLAgent's records as the gates read them: one row per migration it produced, and where they live.

Apart from the provenance gate (`orchestrator.sqlagent`) because the store builds records from rows
and the test peers write them, neither of which needs the gate's checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from orchestrator.contract import MigrationProvenance
from orchestrator.store_rows import sha256_field, text_field, time_field

__all__ = ["SqlAgentRecord", "SqlAgentRecords"]


@dataclass(frozen=True, slots=True)
class SqlAgentRecord:
    """One migration as the SQLAgent recorded it when it produced it."""

    id: str
    sqlagent_run_id: str
    agent_id: str
    filename: str
    version: str
    sha256: str
    undo_filename: str | None
    undo_sha256: str | None
    recorded_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> SqlAgentRecord:
        """Parse a row (database or HTTP JSON). Raises ValueError naming the bad field."""
        undo_filename, undo_sha = row.get("undo_filename"), row.get("undo_sha256")
        if (undo_filename is None) != (undo_sha is None):
            raise ValueError("`undo_filename` and `undo_sha256` must both be set or both be null")
        return cls(
            id=text_field(row, "id"),
            sqlagent_run_id=text_field(row, "sqlagent_run_id"),
            agent_id=text_field(row, "agent_id"),
            filename=text_field(row, "filename"),
            version=text_field(row, "version"),
            sha256=sha256_field(row, "sha256"),
            undo_filename=None if undo_filename is None else text_field(row, "undo_filename"),
            undo_sha256=None if undo_sha is None else sha256_field(row, "undo_sha256"),
            recorded_at=time_field(row, "recorded_at"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The HTTP JSON shape of the row."""
        return {
            "id": self.id,
            "sqlagent_run_id": self.sqlagent_run_id,
            "agent_id": self.agent_id,
            "filename": self.filename,
            "version": self.version,
            "sha256": self.sha256,
            "undo_filename": self.undo_filename,
            "undo_sha256": self.undo_sha256,
            "recorded_at": self.recorded_at.isoformat(),
        }

    def files(self) -> dict[str, str]:
        """File name -> sha256 of what this record says the SQLAgent produced (the V file and its undo)."""
        produced = {self.filename: self.sha256}
        if self.undo_filename is not None and self.undo_sha256 is not None:
            produced[self.undo_filename] = self.undo_sha256
        return produced

    def digest_of(self, filename: str) -> str | None:
        """`files().get(filename)` without building the mapping (asked for thousands of files a deploy)."""
        if filename == self.undo_filename and self.undo_sha256 is not None:
            return self.undo_sha256
        return self.sha256 if filename == self.filename else None

    def provenance(self, filename: str) -> MigrationProvenance:
        sha256 = self.digest_of(filename)
        if sha256 is None:
            raise KeyError(filename)
        return MigrationProvenance(
            sha256=sha256,
            sqlagent_run_id=self.sqlagent_run_id,
            agent_id=self.agent_id,
            recorded_at=self.recorded_at.isoformat(),
            record_id=self.id,
        )

    def describe(self) -> str:
        return f"run {self.sqlagent_run_id} by {self.agent_id}, recorded {self.recorded_at.isoformat()}"


class SqlAgentRecords(Protocol):
    """Where the SQLAgent's records are read (the pipeline store). Raises GateError(gate="store")."""

    def describe(self) -> str: ...

    def sqlagent_records(self, filenames: Sequence[str]) -> list[SqlAgentRecord]:
        """Every record naming one of `filenames` as its migration or its undo script."""
        ...

    def sqlagent_matches(self, deployed: Mapping[str, str]) -> list[SqlAgentRecord]:
        """The records that decide the provenance gate for `deployed` (file name -> sha256): of the records
        naming a file with exactly its sha256, at least the newest by the SQLAgent and the oldest by each
        other agent. More may come (any record naming a file with its sha256); none naming it otherwise."""
        ...

    def sqlagent_run(self, sqlagent_run_id: str) -> list[SqlAgentRecord]:
        """Every record of one SQLAgent run."""
        ...
