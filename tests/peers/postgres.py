"""A real PostgreSQL server for the test session, one database per test.

Debian's server binaries refuse to run as root, so as root the server runs as the
`postgres` user (`runuser`), which the postgresql package creates. A `DatabasePool` creates each
test's database before the test asks and drops it after, beside the tests rather than inside them.
"""

from __future__ import annotations

import glob
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

INSTALL_HINT = (
    "PostgreSQL server binaries not found. Install them with `apt-get install -y postgresql` "
    "(or run `make test`, which does), or point PG_BINDIR at the folder holding pg_ctl."
)


def find_bindir() -> Path:
    explicit = os.environ.get("PG_BINDIR")
    if explicit and (Path(explicit) / "pg_ctl").exists():
        return Path(explicit)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(INSTALL_HINT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server; `dsn(db)` is a TCP DSN with a password, as in production."""

    root: Path
    port: int
    bindir: Path
    user: str = "orchestrator"
    password: str = "pw-test-canary-5f1e"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        name = name or "t_" + uuid.uuid4().hex[:12]
        conn = psycopg2.connect(self.dsn())
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return name

    def drop_database(self, name: str) -> None:
        conn = psycopg2.connect(self.dsn())
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in argv]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", mode, "-w", "stop")

    def start(self) -> None:
        data = self.root / "data"
        proc = self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            "start",
        )
        if proc.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace") if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {proc.stderr}\n{log}")


def start_server() -> PostgresServer:
    bindir = find_bindir()
    root = Path(tempfile.mkdtemp(prefix="do-pg-"))
    os.chmod(root, 0o777)
    server = PostgresServer(root=root, port=free_port(), bindir=bindir)
    pwfile = root / "pw"
    pwfile.write_text(server.password + "\n")
    os.chmod(pwfile, 0o644)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    proc = server._run(
        str(bindir / "initdb"),
        "-D",
        str(root / "data"),
        "-U",
        server.user,
        "--pwfile",
        str(pwfile),
        "-A",
        "scram-sha-256",
        "--auth-local=trust",
        "-E",
        "UTF8",
        "--no-sync",
    )
    if proc.returncode != 0:
        raise RuntimeError(f"initdb failed: {proc.stderr}")
    server.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg2.connect(server.dsn()).close()
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return server


def stop_server(server: PostgresServer) -> None:
    server.stop("immediate")
    shutil.rmtree(server.root, ignore_errors=True)


@dataclass
class DatabasePool:
    """Fresh databases (CREATE DATABASE from the pristine template1, as before) made ahead of the tests that
    take them, and dropped after, on one thread beside the tests: a test rarely waits for either.

    A database is taken by one test only and never handed out again. As with a drop inside the test's own
    teardown, `take` returns only once every database given back before it is gone (its sessions ended),
    so no test sees another's leftovers in pg_stat_activity. `close` raises if a creation or drop failed.
    """

    server: PostgresServer
    spares: int = 2
    _ready: queue.Queue[str | BaseException] = field(default_factory=queue.Queue)
    _work: queue.Queue[tuple[str, str] | None] = field(default_factory=queue.Queue)
    _dropping: int = 0
    _dropped: threading.Condition = field(default_factory=threading.Condition)
    _failures: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        for _ in range(self.spares):
            self._work.put(("create", ""))
        self._thread = threading.Thread(target=self._run, name="pg-database-pool", daemon=True)
        self._thread.start()

    def take(self) -> str:
        """The name of an empty database no other test has seen."""
        self._work.put(("create", ""))  # the spare for a later test
        with self._dropped:
            if not self._dropped.wait_for(lambda: self._dropping == 0, timeout=120):
                raise RuntimeError("dropping the previous tests' databases took over 120 s")
        got = self._ready.get(timeout=120)
        if isinstance(got, BaseException):
            raise RuntimeError(f"creating a test database failed: {got}") from got
        return got

    def give_back(self, name: str) -> None:
        """Drop it (WITH (FORCE): sessions a test left open are ended) on the pool's thread."""
        with self._dropped:
            self._dropping += 1
        self._work.put(("drop", name))

    def close(self) -> None:
        self._work.put(None)
        assert self._thread is not None
        self._thread.join(timeout=120)
        if self._failures:
            raise RuntimeError("the test database pool failed: " + "; ".join(self._failures))

    def _run(self) -> None:
        while (job := self._work.get()) is not None:
            verb, name = job
            try:
                if verb == "create":
                    self._ready.put(self.server.create_database())
                else:
                    self.server.drop_database(name)
            except Exception as exc:  # reported by take() or close(), never lost in this thread
                self._failures.append(f"{verb} {name or 'a database'}: {exc}")
                if verb == "create":
                    self._ready.put(exc)
            finally:
                if verb == "drop":
                    with self._dropped:
                        self._dropping -= 1
                        self._dropped.notify_all()
