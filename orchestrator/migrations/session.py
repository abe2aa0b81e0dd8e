"""One migration session for a run: none without scripts, else a runner holding the migration lock."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from orchestrator.contract import DeployConfig
from orchestrator.errors import MigrationError
from orchestrator.migrations.runner import MigrationRunner
from orchestrator.migrations.scripts import MigrationScript
from orchestrator.redaction import Secret

__all__ = ["migration_session"]


@contextmanager
def migration_session(
    scripts: Sequence[MigrationScript],
    dsn: Secret | None,
    config: DeployConfig,
    env: Mapping[str, str],
    *,
    deployment_id: str,
    read_only: bool,
) -> Iterator[MigrationRunner | None]:
    """None when there is nothing to migrate; raises MigrationError when there is and no DSN is set."""
    if not scripts:
        yield None
        return
    if dsn is None:
        raise MigrationError(
            f"migrations are listed but ${config.credentials.db_connection_env_var} is not set; "
            "export the database DSN under that name (credentials.db_connection_env_var)"
        )
    with MigrationRunner(
        dsn,
        config.migrations,
        deployment_id=deployment_id,
        installed_by=env.get("GITHUB_ACTOR") or "deploy-orchestrator",
        read_only=read_only,
    ) as runner:
        yield runner
