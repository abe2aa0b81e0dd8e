"""safe_files: the listing of migration files finds what `sorted(rglob("*.sql"))` finds, in its order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.safe_files import read_regular, sql_files_below


def test_sql_files_below_lists_what_rglob_lists_in_its_order(tmp_path: Path) -> None:
    top = tmp_path / "db"
    for relative in ("V2__b.sql", "V10__a.sql", "sub/V3__c.sql", "sub-x/V4__d.sql", ".hidden/V5__e.sql", "notes.txt"):
        (top / relative).parent.mkdir(parents=True, exist_ok=True)
        (top / relative).write_text("SELECT 1;\n")
    (top / "dir.sql").mkdir()
    (top / "dir.sql" / "V6__f.sql").write_text("SELECT 1;\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "V7__g.sql").write_text("SELECT 1;\n")
    os.symlink(outside, top / "linked")  # a symlinked directory is not entered, as rglob does not
    os.symlink(outside / "V7__g.sql", top / "V8__link.sql")

    listed = sql_files_below(top)

    assert [f.path for f in listed] == sorted(top.rglob("*.sql"))
    assert [f.relative for f in listed] == [p.relative_to(top).as_posix() for p in sorted(top.rglob("*.sql"))]
    kinds = {f.relative: (f.is_link, f.is_dir, f.is_file) for f in listed}
    assert kinds["V8__link.sql"] == (True, False, False)
    assert kinds["dir.sql"] == (False, True, False)
    assert kinds["sub/V3__c.sql"] == (False, False, True)


def test_read_regular_refuses_a_file_over_its_limit_and_a_directory(tmp_path: Path) -> None:
    (tmp_path / "big.sql").write_bytes(b"x" * 11)
    assert read_regular(tmp_path / "big.sql", field="f", limit=11) == b"x" * 11
    with pytest.raises(ConfigError, match=r"big\.sql is 11 bytes; the limit is 10"):
        read_regular(tmp_path / "big.sql", field="f", limit=10)
    with pytest.raises(ConfigError, match="is a directory, not a regular file"):
        read_regular(tmp_path, field="f", limit=10)
    os.mkfifo(tmp_path / "pipe.sql")
    with pytest.raises(ConfigError, match="FIFO"):
        read_regular(tmp_path / "pipe.sql", field="f", limit=10)
