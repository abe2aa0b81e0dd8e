"""The deploy lock: one run per target, and never through a transaction-mode pooler (where a
session advisory lock would be handed to whichever run shares the backend)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orchestrator.deploy_lock import hold_deploy_lock
from orchestrator.errors import LockError
from orchestrator.redaction import Secret
from tests.migrations.conftest import PgBouncer
from tests.peers import postgres


def lock(dsn: str, target: str, deployment_id: str, wait_seconds: float = 0):  # type: ignore[no-untyped-def]
    return hold_deploy_lock(Secret(dsn), target, wait_seconds=wait_seconds, deployment_id=deployment_id)


def test_a_second_holder_waits_then_fails_naming_the_first(pg_dsn: str) -> None:
    with lock(pg_dsn, "production/local/a", "first"):
        with pytest.raises(LockError) as caught, lock(pg_dsn, "production/local/a", "second", wait_seconds=0.3):
            pass
        assert "application_name 'deploy-orchestrator first'" in str(caught.value)
        with lock(pg_dsn, "production/local/b", "other"):
            pass
    with lock(pg_dsn, "production/local/a", "third"):
        pass


def test_a_transaction_mode_pooler_is_refused(
    pg_server: postgres.PostgresServer, pgbouncer: Callable[[str], PgBouncer], pg_dsn: str
) -> None:
    database = pg_dsn.rsplit("/", 1)[1]
    bouncer = pgbouncer("transaction")
    with pytest.raises(LockError) as caught, lock(bouncer.dsn(pg_server, database), "t", "x"):
        pass
    assert "transaction mode" in str(caught.value)
    assert pg_server.password not in str(caught.value)


def test_an_unreachable_database_fails_closed() -> None:
    with (
        pytest.raises(LockError, match="unreachable") as caught,
        lock("postgresql://u:pw-canary-9@127.0.0.1:9/db", "t", "x"),
    ):
        pass
    assert "pw-canary-9" not in str(caught.value)
