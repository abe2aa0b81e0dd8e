"""Session advisory locks in PostgreSQL: the migration lock and the deploy lock.

Session-level on purpose. Flyway's transactional `pg_advisory_xact_lock` keeps a transaction
open for the whole run, and `CREATE INDEX CONCURRENTLY` waits for every open transaction to end,
so it waits for the lock holder, itself: it hangs. A session lock holds no transaction and is
released by PostgreSQL if the runner dies, so a crashed run never leaves the lock behind.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.errors import LockError
from orchestrator.progress import Reporter

__all__ = ["DEPLOYS", "MIGRATIONS", "AdvisoryLock", "LockHolder", "migration_lock"]

# Namespaces (the first key of the two-key form) keep our locks apart from each other and from the
# application's own advisory locks, which mostly use the one-key form.
MIGRATIONS = 0x444F_4D47  # "DOMG"
DEPLOYS = 0x444F_4450  # "DODP"
_POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class LockHolder:
    pid: int
    application_name: str | None
    client_addr: str | None
    backend_start: datetime | None
    state: str | None

    def describe(self) -> str:
        since = f"{self.backend_start:%Y-%m-%d %H:%M:%S %Z}" if self.backend_start else "unknown"
        return (
            f"pid {self.pid}, application_name '{self.application_name or ''}', "
            f"client {self.client_addr or 'local socket'}, connected since {since}, state {self.state or 'unknown'}"
        )


class AdvisoryLock:
    """One named lock, taken and released on one autocommit connection."""

    def __init__(self, namespace: int, name: str, *, purpose: str, wait_setting: str) -> None:
        self.name = name
        self.purpose = purpose
        self.wait_setting = wait_setting
        self.key = (_signed(namespace), _signed(zlib.crc32(name.encode())))

    def acquire(self, cur: Any, *, wait_seconds: float, where: str) -> None:
        """Take the lock, polling until `wait_seconds` have passed. Raises LockError naming the holder."""
        deadline = time.monotonic() + wait_seconds
        if self._try(cur):
            return
        progress = Reporter(f"the {self.purpose} on {where}, held by another run", wait_seconds)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            progress.tick(wait_seconds - remaining)
            time.sleep(min(_POLL_SECONDS, remaining))
            if self._try(cur):
                return
        holder = self.holder(cur)
        who = holder.describe() if holder else "a session that has just released it"
        error = LockError(
            f"another run holds the {self.purpose} on {where} ({self.name}): {who}. Waited "
            f"{wait_seconds:g} s ({self.wait_setting}). Let that run finish and deploy again; if it is "
            f"stuck, end its session with SELECT pg_terminate_backend({holder.pid if holder else '<pid>'})."
        )
        error.holder = holder
        raise error

    def _try(self, cur: Any) -> bool:
        cur.execute("SELECT pg_try_advisory_lock(%s, %s)", self.key)
        row = cur.fetchone()
        return bool(row and row[0])

    def release(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_unlock(%s, %s)", self.key)

    def holder(self, cur: Any) -> LockHolder | None:
        cur.execute(
            """
            SELECT a.pid, a.application_name, host(a.client_addr), a.backend_start, a.state
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid = %s::oid AND l.objid = %s::oid
            """,
            tuple(_unsigned(k) for k in self.key),
        )
        row = cur.fetchone()
        return LockHolder(*row) if row else None


def migration_lock(schema: str) -> AdvisoryLock:
    """The lock for one history schema: two runs never migrate one database at once."""
    return AdvisoryLock(
        MIGRATIONS, f"history schema {schema}", purpose="migration lock", wait_setting="migrations.lock_wait_seconds"
    )


def _signed(value: int) -> int:
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value >= (1 << 31) else value


def _unsigned(value: int) -> int:
    return value & 0xFFFF_FFFF
