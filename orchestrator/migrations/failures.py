"""What a failed migration says: the cause in one line, what stayed applied, and what to do next."""

from __future__ import annotations

from typing import Any

from orchestrator.contract import MigrationsConfig
from orchestrator.migrations.scripts import MigrationScript
from orchestrator.redaction import redact

__all__ = ["EndedTransactionError", "failure_message"]

_LOCK_NOT_AVAILABLE = "55P03"
_ACTIVE_SQL_TRANSACTION = "25001"


def failure_message(
    script: MigrationScript, exc: Exception, action: str, *, connection: Any, config: MigrationsConfig
) -> str:
    """What a failed apply or undo of `script` says: the cause, what stayed, and what to do (redacted by the caller)."""
    if isinstance(exc, EndedTransactionError):
        return (
            f"{script.filename} ended the runner's transaction itself (COMMIT or ROLLBACK inside the script), "
            "so it could not be recorded atomically; what it committed stays. Remove the transaction "
            "control statements, or mark the script with '-- deploy-orchestrator: no-transaction'."
        )
    if connection is None or connection.closed:
        return (
            f"the database connection was lost during {action} of {script.filename} ({_first_line(exc)}); "
            "PostgreSQL rolled the unfinished transaction back, so nothing of it was recorded. "
            "Run again to re-apply it." + _partial_note(script)
        )
    code = getattr(exc, "pgcode", None)
    reason = f"{_first_line(exc)} (SQLSTATE {code})" if code else _first_line(exc)
    if code == _LOCK_NOT_AVAILABLE:
        hint = (
            f" It waited longer than lock_timeout ({config.lock_timeout_seconds:g} s, "
            "migrations.lock_timeout_seconds) for a table another transaction is using; rather than queue "
            "traffic behind it, it gave up. Find the blocker in pg_stat_activity, or retry when it is quiet."
        )
    elif code == _ACTIVE_SQL_TRANSACTION and script.transactional:
        hint = (
            " A statement here cannot run inside a transaction (e.g. CREATE INDEX CONCURRENTLY): add the "
            "header line '-- deploy-orchestrator: no-transaction' to the script, in a new migration."
        )
    else:
        hint = " Fix it in a new migration, or correct this unapplied file, and deploy again."
    kept = " Its statements were rolled back and nothing of it was recorded." if script.transactional else ""
    return f"{action} of {script.filename} failed: {reason}.{kept}{hint}{_partial_note(script)}"


class EndedTransactionError(Exception):
    """The script committed or rolled back the transaction the runner opened for it."""


def _partial_note(script: MigrationScript) -> str:
    if script.transactional:
        return ""
    return (
        " It ran outside a transaction, so statements before the failing one took effect: make the script "
        "idempotent (IF NOT EXISTS; DROP INDEX IF EXISTS for an index left INVALID) before it runs again."
    )


def _first_line(exc: BaseException) -> str:
    text = (getattr(exc, "pgerror", None) or str(exc) or type(exc).__name__).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return redact(first.removeprefix("ERROR:").strip())
