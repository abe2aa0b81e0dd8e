"""The rows of the pipeline store the gates read (database or HTTP JSON), parsed strictly.

A bad field is a ValueError naming it; the store turns it into a refusal (the gates fail closed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.artifacts import ArtifactDigests

__all__ = ["ComplianceVerdict", "ValidationRun", "sha256_field", "text_field", "time_field"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


def text_field(row: Mapping[str, Any], name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"`{name}` must be a non-empty string")
    return value


def time_field(row: Mapping[str, Any], name: str) -> datetime:
    value = row.get(name)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"`{name}` is not an ISO 8601 timestamp: {value!r}") from None
    if not isinstance(value, datetime):
        raise ValueError(f"`{name}` must be a timestamp")
    if value.tzinfo is None:
        # A time without an offset is ambiguous by hours; the age gate cannot judge it.
        raise ValueError(f"`{name}` has no UTC offset: {value.isoformat()}")
    return value


def sha256_field(row: Mapping[str, Any], name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ValueError(f"`{name}` must be a lowercase hex sha256 (64 characters)")
    return value


@dataclass(frozen=True, slots=True)
class ValidationRun:
    """A ValidationAgent run: its status and the digests of what it tested."""

    id: str
    status: str
    agent_id: str
    created_at: datetime
    finished_at: datetime | None
    digests: ArtifactDigests

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ValidationRun:
        """Parse a row (database or HTTP JSON). Raises ValueError naming the bad field."""
        return cls(
            id=text_field(row, "id"),
            status=text_field(row, "status"),
            agent_id=text_field(row, "agent_id"),
            created_at=time_field(row, "created_at"),
            finished_at=None if row.get("finished_at") is None else time_field(row, "finished_at"),
            digests=ArtifactDigests.from_dict(row.get("artifact_digests")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The HTTP JSON shape of the row."""
        return {
            "id": self.id,
            "status": self.status,
            "agent_id": self.agent_id,
            "created_at": self.created_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "artifact_digests": self.digests.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class ComplianceVerdict:
    """A ComplianceValidator verdict on one validation run, with the digests it approved."""

    id: str
    validation_run_id: str
    validator_id: str
    verdict: str
    digests: ArtifactDigests
    decided_at: datetime
    reason: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ComplianceVerdict:
        """Parse a row (database or HTTP JSON). Raises ValueError naming the bad field."""
        reason = row.get("reason")
        return cls(
            id=text_field(row, "id"),
            validation_run_id=text_field(row, "validation_run_id"),
            validator_id=text_field(row, "validator_id"),
            verdict=text_field(row, "verdict"),
            digests=ArtifactDigests.from_dict(row.get("artifact_digests")),
            decided_at=time_field(row, "decided_at"),
            reason=reason if isinstance(reason, str) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The HTTP JSON shape of the row."""
        return {
            "id": self.id,
            "validation_run_id": self.validation_run_id,
            "validator_id": self.validator_id,
            "verdict": self.verdict,
            "artifact_digests": self.digests.to_dict(),
            "decided_at": self.decided_at.isoformat(),
            "reason": self.reason,
        }
