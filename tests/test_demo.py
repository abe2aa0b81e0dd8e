"""The README's first command ends in `deploy-orchestrator demo`: it must keep telling the truth."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_demo_deploys_rolls_back_and_refuses_as_the_readme_says(tmp_path: Path) -> None:
    private = stat.S_IMODE(tmp_path.stat().st_mode)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from orchestrator.cli import main; sys.exit(main(sys.argv[1:]))",
            "demo",
            "--workspace",
            str(tmp_path / "demo"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = (ROOT / "README.md").read_text().split("| release | status | exit | serving after | public tables |")[1]
    for row in table.split("```")[0].strip().splitlines()[1:]:
        assert row in done.stdout
    assert "demo: every step behaved as expected" in done.stdout
    assert len(list((tmp_path / "demo" / "summaries").glob("*.md"))) == 4
    # As root the embedded PostgreSQL opens every parent of its data directory to its own user; the
    # workspace's parents (here pytest's private 0700 temp dirs) are never among them.
    assert stat.S_IMODE(tmp_path.stat().st_mode) == private
