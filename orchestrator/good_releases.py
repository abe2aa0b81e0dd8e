"""Which releases are good to return to: the ledger's judgement over the platform's own list.

A release is a rollback candidate only if it went live, passed verification, and was not later
rolled back from. The ledger (`deployment_log`) knows all three; each row is one event about one
or two versions, and the newest event about a version decides:

- a deploy that succeeded, or a manual rollback that reached its target and verified it, makes
  that release good;
- a deploy that was rolled back, failed after its release could have taken traffic, or crashed
  (unless recovery found it verified and kept it), makes it bad; a manual rollback makes the
  release it left bad, and a failed one makes its target bad.

The platform's list says what exists to return to (its order, newest first, is kept). A release
the ledger has never seen (deployed before the ledger, or by hand) is judged by the platform
alone: it is listed because it went live there. Without a ledger the platform's list is all
there is; each adapter drops what it knows was rolled back from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import psycopg2
from psycopg2 import sql

from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.ledger.database import LedgerError, check_schema_name, connect, ensure_tables
from orchestrator.platforms.base import Release
from orchestrator.redaction import Secret, redact
from orchestrator.runlog import RunLog

__all__ = [
    "LedgerEvent",
    "ReleaseJudgement",
    "automatic_target",
    "candidates",
    "judge",
    "judgement_if_known",
    "read_judgement",
    "rollback_target",
]

# Steps after which a failed deploy's release may have served users: it is not to be trusted.
_AFTER_LIVE = frozenset({"health", "switch", "verification", "rollback", "cancelled"})
_HISTORY_ROWS = 500


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """One settled `deployment_log` row, as far as release quality goes."""

    mode: str
    status: str
    new_version: str | None
    previous_version: str | None
    failed_step: str | None = None
    rollback_triggered: bool = False
    kept_live: str | None = None
    """For a crashed row: the release recovery verified and left serving, if any."""


@dataclass(frozen=True, slots=True)
class ReleaseJudgement:
    good: tuple[str, ...] = ()
    """Good releases, the most recently confirmed first."""
    bad: frozenset[str] = field(default_factory=frozenset)

    def is_candidate(self, version: str) -> bool:
        return version in self.good or version not in self.bad

    def known(self, version: str) -> bool:
        return version in self.good or version in self.bad


def judge(events: Iterable[LedgerEvent]) -> ReleaseJudgement:
    """The judgement after `events`, oldest first."""
    verdict: dict[str, bool] = {}
    order: list[str] = []

    def mark(version: str | None, good: bool) -> None:
        if not version or version == "none":
            return
        verdict[version] = good
        if good:
            if version in order:
                order.remove(version)
            order.append(version)

    for event in events:
        if event.mode == "deploy":
            if event.status == "success":
                mark(event.new_version, True)
            elif event.status == "rolled_back" or (
                event.status == "failed" and (event.rollback_triggered or event.failed_step in _AFTER_LIVE)
            ):
                mark(event.new_version, False)
            elif event.status == "crashed":
                mark(event.new_version, event.kept_live == event.new_version)
        elif event.mode == "rollback":
            if event.status == "rolled_back" and event.new_version != event.previous_version:
                mark(event.previous_version, False)
                mark(event.new_version, True)
            elif event.status == "failed" and event.failed_step == "rollback":
                mark(event.new_version, False)
            elif event.status == "crashed" and event.kept_live:
                if event.kept_live == event.new_version and event.previous_version != event.new_version:
                    mark(event.previous_version, False)  # recovery finished the rollback away from it
                mark(event.kept_live, True)
    good = tuple(v for v in reversed(order) if verdict.get(v))
    return ReleaseJudgement(good=good, bad=frozenset(v for v, ok in verdict.items() if not ok))


def read_judgement(
    dsn: Secret, *, schema: str, environment: str, platform: str, exclude: str | None = None
) -> ReleaseJudgement:
    """Judge from the ledger's settled rows for this environment and platform. Raises LedgerError."""
    query = sql.SQL(
        "SELECT mode, status, new_version, previous_version, failed_step,"
        " COALESCE((rollback->>'triggered')::boolean, false), recovery->>'serving'"
        " FROM (SELECT * FROM {} WHERE environment = %s AND platform = %s AND status <> 'in_progress'"
        " AND deployment_id IS DISTINCT FROM %s ORDER BY started_at DESC LIMIT %s) recent"
        " ORDER BY started_at"
    ).format(sql.SQL("{}.{}").format(sql.Identifier(check_schema_name(schema)), sql.Identifier("deployment_log")))
    conn = connect(dsn)
    try:
        ensure_tables(conn, schema)
        with conn, conn.cursor() as cur:
            cur.execute(query, (environment, platform, exclude, _HISTORY_ROWS))
            rows = cur.fetchall()
    except psycopg2.Error as exc:
        raise LedgerError(f"reading the ledger's release history failed: {redact(str(exc)).strip()}") from None
    finally:
        conn.close()
    return judge(LedgerEvent(*row) for row in rows)


def judgement_if_known(
    dsn: Secret | None, *, schema: str, environment: str, platform: str, exclude: str, log: RunLog
) -> ReleaseJudgement | None:
    """`read_judgement`, or None (said in the log) when there is no ledger or it cannot be read: then
    the platform's list decides."""
    if dsn is None:
        return None
    try:
        return read_judgement(dsn, schema=schema, environment=environment, platform=platform, exclude=exclude)
    except OrchestratorError as exc:
        log.warn(f"the ledger cannot say which releases are good ({exc}); going by the platform's list")
        return None


def candidates(releases: Sequence[Release], live: Release | None, judgement: ReleaseJudgement | None) -> list[Release]:
    """The platform's releases one may roll back to, newest first: not live, and good."""
    others = [r for r in releases if live is None or r.version != live.version]
    if judgement is None:
        return others
    return [r for r in others if judgement.is_candidate(r.version)]


def rollback_target(
    wanted: str | None, releases: Sequence[Release], live: Release | None, judgement: ReleaseJudgement | None
) -> Release:
    """The release a manual rollback goes to: `wanted` if it is a candidate, else (no `wanted`) the
    newest candidate. Raises ConfigError listing the good ones; nothing touched."""
    good = candidates(releases, live, judgement)
    target = next((r for r in good if r.version == wanted), None) if wanted else next(iter(good), None)
    if target is not None:
        return target
    listed = ", ".join(r.version for r in good) or "none"
    if wanted and any(r.version == wanted for r in releases):
        why = (
            "it is live now"
            if live is not None and live.version == wanted
            else "it never went live and passed verification, or was rolled back from since"
        )
        problem = f"{wanted} is not a good release to roll back to ({why})"
    elif wanted:
        problem = f"no kept release {wanted}"
    else:
        problem = "no good release to roll back to"
    raise ConfigError(
        f"rollback-to: {problem}; good releases to roll back to: {listed}. "
        "A release is good once it went live and passed verification, and stays good until rolled back from."
    )


def automatic_target(
    previous: Release | None,
    releases: Callable[[], Sequence[Release]],
    judgement: ReleaseJudgement | None,
    *,
    failed_version: str,
) -> Release | None:
    """Where an automatic rollback returns: the release live before the run, unless the ledger
    knows it as bad (then the newest candidate, if there is one)."""
    if previous is None or judgement is None or judgement.is_candidate(previous.version):
        return previous
    others = [r for r in releases() if r.version not in (failed_version, previous.version)]
    return next((r for r in others if judgement.is_candidate(r.version)), previous)
