"""The run's collaborators are composed once, touch nothing while composed, and keep the errors of
what they open lazily at the step that opens it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from orchestrator.composition import compose
from orchestrator.config import load_request
from orchestrator.contract import Request
from orchestrator.errors import ConfigError, MigrationError
from orchestrator.migrations.scripts import discover
from orchestrator.runlog import RunLog
from tests.workspace import base_config, write_config


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _request(tmp_path: Path, env: dict[str, str], **sections: object) -> Request:
    config = {**base_config(), **sections}
    write_config(tmp_path, config)
    return load_request({"config": "deploy.json", "version": "v1", "validation-run-id": "run-1"}, env)


def test_composing_opens_no_connection_and_resolves_each_secret_once(tmp_path: Path) -> None:
    # Nothing listens on the port: composing must not connect (each collaborator connects when used).
    dsn = f"postgresql://deploy:s3cret-pw@127.0.0.1:{_closed_port()}/app"
    env = {"GITHUB_WORKSPACE": str(tmp_path), "DATABASE_URL": dsn, "GITHUB_ACTOR": "octo"}
    request = _request(tmp_path, env)
    parts = compose(request, env, RunLog(), deployment_id="d-1")
    assert parts.dsn is not None and parts.dsn.reveal() == dsn
    assert "s3cret-pw" not in repr(parts.dsn) and "s3cret-pw" not in str(parts.dsn)
    assert parts.ledger_dsn is parts.dsn  # no ledger.dsn_env_var: the ledger shares the application's
    assert parts.ledger is not None and parts.actor == "octo"
    assert "127.0.0.1" in parts.verdicts().describe()  # the store the DSN names, not connected to yet
    assert (parts.migrations.deployment_id, parts.migrations.installed_by) == ("d-1", "octo")


def test_a_verdict_source_without_its_dsn_is_the_gate_steps_config_error_not_the_composers(tmp_path: Path) -> None:
    env = {"GITHUB_WORKSPACE": str(tmp_path)}
    request = _request(tmp_path, env)
    parts = compose(request, env, RunLog())
    assert parts.dsn is None and parts.ledger is None
    with pytest.raises(
        ConfigError, match=r"the environment variable DATABASE_URL \(the pipeline store DSN\) is not set"
    ):
        parts.verdicts()


def test_migrations_without_a_dsn_are_refused_when_a_session_opens(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "V1__orders.sql").write_text("CREATE TABLE orders (id int);\n")
    env = {"GITHUB_WORKSPACE": str(tmp_path)}
    request = _request(tmp_path, env)
    scripts = discover([Path("migrations")], tmp_path)
    sessions = compose(request, env, RunLog()).migrations
    with sessions.session((), read_only=True) as runner:
        assert runner is None  # no migrations: no database needed
    with pytest.raises(MigrationError, match=r"\$DATABASE_URL is not set"), sessions.session(scripts, read_only=True):
        pass
