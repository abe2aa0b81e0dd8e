"""Benchmark: what a deploy costs when the work on record grows (issue 14, "costs that grow with the work").

    python bench/scale.py [--files 3000] [--rounds 3]

Starts its own PostgreSQL on 127.0.0.1 and runs the real CLI in a subprocess, as the Action does,
on the local platform (real supervisor, proxy and release processes), gates and ledger included:
  ours    --files migrations (each with its undo script) on record: v1 applies them all (shown,
          not targeted), then --rounds deploys with nothing pending, each a new release
  local   the same deploy with no migrations at all: the orchestrator's own floor
  yoyo    the peer, yoyo-migrations 9.0.0's CLI (`yoyo apply --batch`; Flyway is not installable
          here): the same migrations applied once, then --rounds runs with nothing pending
Every measured run is one process measured the same way: wall seconds from spawn to exit, CPU
seconds (user + sys, from wait4), and peak RSS (VmHWM, read by the process itself at exit through
bench/_peak_rss.py). Medians over the rounds, which are interleaved (ours, local, yoyo, ours, ...).
`added_s` is ours minus local: what the files on record cost a deploy. yoyo only reads and
checks its migrations, so compare it with `added_s`, not with a whole deploy.

Last line: `scale: files=N deploy_s=X rss_mb=X local_rss_mb=X local_s=X added_s=X cpu_s=X first_s=X
yoyo_s=X yoyo_rss_mb=X yoyo_cpu_s=X` (targets: deploy_s < 2, rss_mb < 100, local_rss_mb < 60).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from orchestrator.artifacts import digest_artifacts
from orchestrator.config import parse_config
from orchestrator.platforms.local.control import stop_supervisor
from orchestrator.platforms.local.targets import state_dir_of
from tests.peers.postgres import PostgresServer, free_port, start_server, stop_server
from tests.peers.verdicts import seed_passed
from tests.workspace import base_config, write_config

ROOT = Path(__file__).resolve().parent.parent
PEAK = str(ROOT / "bench" / "_peak_rss.py")


@dataclass(frozen=True, slots=True)
class Run:
    wall_s: float
    cpu_s: float
    rss_mb: float
    sdks: tuple[str, ...]


def measured(report: Path, target: str, args: list[str], *, cwd: Path, env: dict[str, str]) -> Run:
    """One process of `target` (module:function), measured; raises SystemExit if it failed."""
    started = time.perf_counter()
    with (cwd / "bench.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, PEAK, str(report), target, *args], cwd=cwd, env=env, stdout=log, stderr=log
        )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    found = json.loads(report.read_text())
    if process.returncode != 0:
        raise SystemExit(f"bench/scale.py: {target} {' '.join(args)} exited {process.returncode}; see {cwd}/bench.log")
    return Run(wall, usage.ru_utime + usage.ru_stime, found["peak_kib"] / 1024, tuple(found["sdks"]))


class Site:
    """A workspace deploying to the local platform, with `files` migrations (and their undo scripts) in db/."""

    def __init__(self, root: Path, server: PostgresServer, files: int) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.dsn = server.dsn(server.create_database())
        self.config = base_config(free_port())
        self.config["agentbench_config"]["url"] = f"http://127.0.0.1:{free_port()}/agentbench"
        if files:
            (root / "db").mkdir()
            for n in range(1, files + 1):
                (root / "db" / f"V{n}__t{n}.sql").write_text(f"CREATE TABLE t{n} (id bigint PRIMARY KEY, note text);\n")
                (root / "db" / f"U{n}__t{n}.sql").write_text(f"DROP TABLE t{n};\n")
            self.config["artifacts"]["migrations"] = ["db"]
        write_config(root, self.config)
        self.digests = digest_artifacts(parse_config(self.config, root).artifacts, root)
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "GITHUB_WORKSPACE": str(root),
            "DATABASE_URL": self.dsn,
            "AGENTBENCH_TOKEN": "bench-token",
            "PYTHONPATH": str(ROOT),
        }
        self.deploys = 0

    def deploy(self) -> Run:
        self.deploys += 1
        version = f"v{self.deploys}"
        seed_passed(self.dsn, f"run-{version}", self.digests)
        args = ["--config", "deploy.json", "--version", version, "--validation-run-id", f"run-{version}"]
        return measured(self.root / f"peak-{version}.json", "orchestrator.cli:main", args, cwd=self.root, env=self.env)

    def stop(self) -> None:
        local = parse_config(self.config, self.root).deployment.local
        assert local is not None
        # Stopping removes every kept snapshot (thousands of files each): on a loaded machine that
        # takes longer than the CLI's default wait.
        stop_supervisor(state_dir_of(local, self.root), timeout=600)


class YoyoSite:
    """The same migrations for yoyo (NNNN_name.sql and .rollback.sql), the database named in yoyo.ini."""

    def __init__(self, root: Path, server: PostgresServer, files: int) -> None:
        self.root = root
        (root / "migrations").mkdir(parents=True)
        for n in range(1, files + 1):
            stem = root / "migrations" / f"{n:05d}_t{n}"
            stem.with_suffix(".sql").write_text(f"CREATE TABLE t{n} (id bigint PRIMARY KEY, note text);\n")
            stem.with_name(stem.name + ".rollback.sql").write_text(f"DROP TABLE t{n};\n")
        # In a config file, not argv: the DSN holds a password.
        dsn = server.dsn(server.create_database())
        (root / "yoyo.ini").write_text(f"[DEFAULT]\nsources = migrations\ndatabase = {dsn}\nbatch_mode = on\n")
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": str(root)}
        self.runs = 0

    def apply(self) -> Run:
        self.runs += 1
        report = self.root / f"peak-{self.runs}.json"
        return measured(
            report, "yoyo.scripts.main:main", ["apply", "--config", "yoyo.ini"], cwd=self.root, env=self.env
        )


def median(runs: list[Run], field: str) -> float:
    return statistics.median(getattr(r, field) for r in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3000, help="migrations on record (each with its undo)")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs of each, interleaved")
    options = parser.parse_args()
    console = Console(width=150)
    server = start_server()
    sites: list[Site] = []
    runs: dict[str, list[Run]] = {"ours": [], "local": [], "yoyo": []}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            root = Path(tmp)
            try:
                ours, local = Site(root / "ours", server, options.files), Site(root / "local", server, 0)
                sites += [ours, local]
                yoyo = YoyoSite(root / "yoyo", server, options.files)
                first, local_first, yoyo_first = ours.deploy(), local.deploy(), yoyo.apply()
                for _ in range(options.rounds):
                    runs["ours"].append(ours.deploy())
                    runs["local"].append(local.deploy())
                    runs["yoyo"].append(yoyo.apply())
            finally:
                failures = []
                for site in sites:  # each one stopped, whatever happened to the one before
                    try:
                        site.stop()
                    except Exception as exc:
                        failures.append(f"{site.root}: {exc}")
                if failures:
                    raise SystemExit("bench/scale.py: could not stop " + "; ".join(failures))
    finally:
        stop_server(server)

    n = options.files
    table = Table(title=f"{n} migrations on record ({2 * n} files with their undo scripts), PostgreSQL on 127.0.0.1")
    for column in ("run", "wall s", "cpu s", "peak RSS MB", "heavy libraries loaded"):
        table.add_column(column, justify="left" if column in ("run", "heavy libraries loaded") else "right")

    def row(label: str, found: list[Run]) -> None:
        sdks = ", ".join(sorted({s for r in found for s in r.sdks})) or "none"
        wall, cpu, rss = (median(found, f) for f in ("wall_s", "cpu_s", "rss_mb"))
        table.add_row(label, f"{wall:.2f}", f"{cpu:.2f}", f"{rss:.1f}", sdks)

    row(f"ours: first deploy, {n} pending (once)", [first])
    row(f"ours: deploy, nothing pending (median of {options.rounds})", runs["ours"])
    row("local: first deploy, no migrations (once)", [local_first])
    row(f"local: deploy, no migrations (median of {options.rounds})", runs["local"])
    row(f"yoyo apply: {n} pending (once)", [yoyo_first])
    row(f"yoyo apply: nothing pending (median of {options.rounds})", runs["yoyo"])
    console.print(table)
    deploy_s, local_s = median(runs["ours"], "wall_s"), median(runs["local"], "wall_s")
    rss, local_rss = median(runs["ours"], "rss_mb"), median(runs["local"], "rss_mb")
    console.print(
        f"targets: deploy_s < 2 ({deploy_s:.2f}), rss_mb < 100 ({rss:.1f}), local_rss_mb < 60 ({local_rss:.1f}); "
        f"the files on record add {deploy_s - local_s:.2f} s to a deploy, yoyo's whole check takes "
        f"{median(runs['yoyo'], 'wall_s'):.2f} s. Load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs."
    )
    print(
        f"scale: files={n} deploy_s={deploy_s:.2f} rss_mb={rss:.1f} local_rss_mb={local_rss:.1f} local_s={local_s:.2f} "
        f"added_s={deploy_s - local_s:.2f} cpu_s={median(runs['ours'], 'cpu_s'):.2f} first_s={first.wall_s:.2f} "
        f"yoyo_s={median(runs['yoyo'], 'wall_s'):.2f} yoyo_rss_mb={median(runs['yoyo'], 'rss_mb'):.1f} "
        f"yoyo_cpu_s={median(runs['yoyo'], 'cpu_s'):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
