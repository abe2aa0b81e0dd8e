"""Peers for the migration tests: a workspace of migration files, a runner factory, and a real PgBouncer."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from orchestrator.contract import MigrationsConfig
from orchestrator.migrations import MigrationRunner, MigrationScript, discover
from orchestrator.redaction import Secret
from tests.peers import postgres

PGBOUNCER = "/usr/sbin/pgbouncer"


@dataclass
class Workspace:
    root: Path
    folder: str = "db/migrations"

    def write(self, name: str, sql: str) -> Path:
        path = self.root / self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql)
        return path

    def scripts(self) -> tuple[MigrationScript, ...]:
        return discover([Path(self.folder)], self.root)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    return Workspace(root)


RunnerFactory = Callable[..., MigrationRunner]


@pytest.fixture
def make_runner(pg_dsn: str) -> RunnerFactory:
    """A runner on this test's database; keyword args override MigrationsConfig fields."""

    def make(
        *, dsn: str | None = None, deployment_id: str = "dep-1", read_only: bool = False, **config: Any
    ) -> MigrationRunner:
        settings = replace(MigrationsConfig(lock_wait_seconds=2.0), **config)
        return MigrationRunner(
            Secret(dsn or pg_dsn, "dsn"),
            settings,
            deployment_id=deployment_id,
            installed_by="tester",
            read_only=read_only,
        )

    return make


@pytest.fixture
def sql(pg_dsn: str) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    """Run one statement on the test database in its own autocommit session; returns the rows."""
    conn = psycopg2.connect(pg_dsn)
    conn.autocommit = True

    def run(statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with conn.cursor() as cur:
            cur.execute(statement, params or None)
            return list(cur.fetchall()) if cur.description else []

    yield run
    conn.close()


@dataclass
class PgBouncer:
    port: int
    process: subprocess.Popen[bytes]
    root: Path
    log: Path

    def dsn(self, server: postgres.PostgresServer, database: str) -> str:
        return f"postgresql://{server.user}:{server.password}@127.0.0.1:{self.port}/{database}"


@pytest.fixture
def pgbouncer(pg_server: postgres.PostgresServer) -> Iterator[Callable[..., PgBouncer]]:
    """Start Debian's real pgbouncer in front of the test server: `pgbouncer("transaction")`.

    pgbouncer refuses to run as root, so as root it runs as `postgres` (like the server itself).
    """
    if not Path(PGBOUNCER).exists():
        pytest.fail("pgbouncer is not installed: apt-get install -y pgbouncer", pytrace=False)
    started: list[PgBouncer] = []

    def start(pool_mode: str, users: Sequence[tuple[str, str]] = ()) -> PgBouncer:
        """`users`: more (name, password) logins besides the server's own."""
        root = Path(tempfile.mkdtemp(prefix="do-pgb-"))
        port = postgres.free_port()
        logins = [(pg_server.user, pg_server.password), *users]
        # userlist.txt quotes each field and doubles a quote inside it.
        lines = "".join(f'"{name}" "{password.replace(chr(34), chr(34) * 2)}"\n' for name, password in logins)
        (root / "userlist.txt").write_text(lines, encoding="utf-8")
        (root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={pg_server.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir = {root}\n"
            f"auth_type = scram-sha-256\nauth_file = {root / 'userlist.txt'}\n"
            f"pool_mode = {pool_mode}\ndefault_pool_size = 5\nmax_client_conn = 50\n"
            f"logfile = {root / 'pgbouncer.log'}\npidfile = {root / 'pgbouncer.pid'}\n"
            "ignore_startup_parameters = extra_float_digits\n"
        )
        os.chmod(root, 0o755)
        for name in ("userlist.txt", "pgbouncer.ini"):
            os.chmod(root / name, 0o644)
        argv = [PGBOUNCER, str(root / "pgbouncer.ini")]
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
            argv = ["runuser", "-u", "postgres", "--", *argv]
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        bouncer = PgBouncer(port=port, process=process, root=root, log=root / "pgbouncer.log")
        started.append(bouncer)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return bouncer
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = bouncer.log.read_text() if bouncer.log.exists() else ""
                    pytest.fail(f"pgbouncer did not start: {log}", pytrace=False)
                time.sleep(0.05)

    yield start
    for bouncer in started:
        # Signal pgbouncer itself (its pidfile): runuser then exits with it. Signalling runuser
        # instead costs its fixed 2 s grace sleep before it kills its child.
        pidfile = bouncer.root / "pgbouncer.pid"
        try:
            if pidfile.exists():
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
            else:
                os.killpg(bouncer.process.pid, signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
        try:
            bouncer.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(bouncer.process.pid, signal.SIGKILL)
            bouncer.process.wait(timeout=5)
        shutil.rmtree(bouncer.root, ignore_errors=True)
