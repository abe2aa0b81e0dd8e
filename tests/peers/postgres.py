"""A real PostgreSQL server for the test session, one database per test.

Debian's server binaries refuse to run as root, so as root the server runs as the
`postgres` user (`runuser`), which the postgresql package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
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
