"""Long waits say what they wait for, how long so far and the deadline, in the job log and the result."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.platforms.polling import Backoff, BoundedWait
from orchestrator.progress import Reporter, bound
from tests.peers.do_simulator import DoSimulator
from tests.test_pipeline_digitalocean import deploy

ROOT = Path(__file__).resolve().parent.parent


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


def test_a_reporter_is_quiet_at_first_then_speaks_at_most_every_interval() -> None:
    sink = Lines()
    reporter = Reporter("the deploy lock", 120, sink=sink, quiet_seconds=5, every_seconds=10)
    for elapsed in (0, 1, 4.9, 5.0, 6, 14.9, 15.0, 15.5, 24.9, 25.1):
        reporter.tick(elapsed)
    assert sink.lines == [
        "waiting for the deploy lock: 5 s so far, deadline 120 s",
        "waiting for the deploy lock: 15 s so far, deadline 120 s",
        "waiting for the deploy lock: 25 s so far, deadline 120 s",
    ]


def test_a_reporter_without_a_run_to_report_to_is_silent() -> None:
    Reporter("anything", 1, quiet_seconds=0).tick(100)  # no sink bound: nothing to assert but no error


def test_a_bounded_wait_names_what_it_waits_for_between_polls() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    sink = Lines()
    with bound(sink):
        wait = BoundedWait(30, Backoff(2, 1, 2), clock=clock, sleep=sleep, what="a build")
        while wait.sleep_until_next_poll(wait.elapsed()):
            pass
    assert sink.lines == [
        "waiting for a build: 6 s so far, deadline 30 s",
        "waiting for a build: 16 s so far, deadline 30 s",
        "waiting for a build: 26 s so far, deadline 30 s",
    ]


@pytest.mark.slow
def test_a_slow_digitalocean_build_is_reported_while_it_runs(tmp_path: Path, pg_dsn: str) -> None:
    sim = DoSimulator(phases={"PENDING_BUILD": 0.05, "BUILDING": 7.0, "PENDING_DEPLOY": 0.05, "DEPLOYING": 0.1})
    try:
        app_id = sim.seed_app("shop", version="v1")
        done = deploy(tmp_path, sim, app_id, pg_dsn, "v2")
    finally:
        sim.close()
    assert done.exit_code == 0, done.result and done.result.error
    assert done.result is not None
    waits = [e.message for e in done.result.logs if e.message.startswith("waiting for DigitalOcean deployment")]
    assert waits, [e.message for e in done.result.logs]
    assert "s so far, deadline" in waits[0]


def test_run_help_names_the_workspace_the_environment_and_the_exit_codes() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py"), "run", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for needle in ("GITHUB_WORKSPACE", "INPUT_<NAME>", "DATABASE_URL", "exit codes:", "3  refused by a gate"):
        assert needle in done.stdout


def test_in_a_terminal_each_phase_shows_a_live_status_and_log_lines_print_above_it() -> None:
    script = (
        "import time\n"
        "from orchestrator.console_logging import log_to_stderr\n"
        "from orchestrator.runlog import RunLog\n"
        "log_to_stderr()\n"
        "run = RunLog()\n"
        "with run.phase('Rollout: blue_green to v2'):\n"
        "    run.info('started v2')\n"
        "    time.sleep(1.5)\n"
        "print('done', flush=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"} | {"TERM": "xterm", "COLUMNS": "100"}
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdin=follower, stdout=follower, stderr=follower, env=env, cwd=ROOT
    )
    os.close(follower)
    screen = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and b"done" not in screen:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                screen += os.read(leader, 65536)
            except OSError:
                break
    process.wait(timeout=30)
    os.close(leader)
    text = screen.decode(errors="replace")
    assert "Rollout: blue_green to v2" in text, text
    assert "started v2" in text
    assert "(1 s)" in text, "the status line counts the seconds"
