"""Finding, naming, ordering and checksumming migration files: no database."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.migrations.scripts import discover, version_key
from orchestrator.migrations.statements import split_statements
from tests.migrations.conftest import Workspace


def test_versions_order_numerically_so_1_10_comes_after_1_9(workspace: Workspace) -> None:
    for name in ("V1_10__ten.sql", "V1_9__nine.sql", "V2__two.sql", "V1.2__dotted.sql", "V1__one.sql"):
        workspace.write(name, "SELECT 1;")
    versions = [s.version for s in workspace.scripts()]
    assert versions == ["1", "1.2", "1.9", "1.10", "2"]


def test_underscored_version_reads_as_dotted_and_description_as_words(workspace: Workspace) -> None:
    workspace.write("V1_2__add_orders_table.sql", "SELECT 1;")
    (script,) = workspace.scripts()
    assert (script.version, script.description, script.kind) == ("1.2", "add orders table", "versioned")


def test_trailing_zero_parts_do_not_make_a_new_version() -> None:
    assert version_key("1.0") == version_key("1") == (1,)
    assert version_key("1.0.1") == (1, 0, 1)


def test_undo_script_follows_its_versioned_script(workspace: Workspace) -> None:
    workspace.write("V2__b.sql", "CREATE TABLE b ();")
    workspace.write("U2__b.sql", "DROP TABLE b;")
    workspace.write("V1__a.sql", "CREATE TABLE a ();")
    assert [s.filename for s in workspace.scripts()] == ["V1__a.sql", "V2__b.sql", "U2__b.sql"]


def test_checksum_is_sha256_hex_of_the_file_bytes(workspace: Workspace) -> None:
    path = workspace.write("V1__a.sql", "CREATE TABLE a (id int);\n")
    (script,) = workspace.scripts()
    assert script.checksum == hashlib.sha256(path.read_bytes()).hexdigest()


def test_no_transaction_header_is_read_from_leading_comments_only(workspace: Workspace) -> None:
    workspace.write("V1__a.sql", "-- builds the index online\n-- deploy-orchestrator: no-transaction\nSELECT 1;")
    workspace.write("V2__b.sql", "SELECT 1;\n-- deploy-orchestrator: no-transaction\n")
    first, second = workspace.scripts()
    assert first.transactional is False
    assert second.transactional is True


def test_listed_files_and_directories_combine_without_false_duplicates(workspace: Workspace) -> None:
    workspace.write("V1__a.sql", "SELECT 1;")
    workspace.write("U1__a.sql", "SELECT 1;")
    scripts = discover([Path("db/migrations"), Path("db/migrations/V1__a.sql")], workspace.root)
    assert [s.filename for s in scripts] == ["V1__a.sql", "U1__a.sql"]


def test_every_problem_is_reported_at_once_naming_each_file(workspace: Workspace, tmp_path: Path) -> None:
    workspace.write("V1__a.sql", "SELECT 1;")
    workspace.write("V1_0__again.sql", "SELECT 1;")
    workspace.write("v2-bad-name.sql", "SELECT 1;")
    workspace.write("U9__orphan.sql", "SELECT 1;")
    workspace.write("R__repeatable.sql", "SELECT 1;")
    outside = tmp_path / "V7__outside.sql"
    outside.write_text("SELECT 1;")
    os.symlink(outside, workspace.root / "db/migrations/V7__outside.sql")
    with pytest.raises(ConfigError) as caught:
        discover([Path("db/migrations"), Path("missing"), Path("../elsewhere")], workspace.root)
    text = str(caught.value)
    problems = caught.value.problems
    assert len(problems) == 7, text
    assert any("V1_0__again.sql and V1__a.sql are both versioned scripts for version 1;" in p for p in problems)
    assert any("v2-bad-name.sql: the name must be V<version>__<description>.sql" in p for p in problems)
    assert any("U9__orphan.sql undoes version 9, but no V9__*.sql is listed" in p for p in problems)
    assert any("R__repeatable.sql" in p and "repeatable R__ migrations are not supported" in p for p in problems)
    assert any("V7__outside.sql resolves to" in p and "outside the workspace" in p for p in problems)
    assert any(p.startswith("artifacts.migrations: missing does not exist") for p in problems)
    assert any(p.startswith("artifacts.migrations: ../elsewhere resolves to") for p in problems)


def test_a_file_that_is_not_utf8_is_named(workspace: Workspace) -> None:
    path = workspace.write("V1__a.sql", "")
    path.write_bytes(b"SELECT '\xff';")
    with pytest.raises(ConfigError, match=r"V1__a.sql is not valid UTF-8"):
        workspace.scripts()


def test_split_statements_respects_quotes_comments_and_dollar_quotes() -> None:
    script = """
    -- header; with a semicolon
    CREATE INDEX CONCURRENTLY i ON t (a);
    /* block ; /* nested ; */ still comment */
    INSERT INTO t VALUES ('a;b', E'it\\'s;', "we;ird");
    CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;
    DO $$ BEGIN PERFORM 1; END $$;
    -- trailing comment only
    """
    statements = split_statements(script)
    assert len(statements) == 4, statements
    assert statements[0].endswith("CREATE INDEX CONCURRENTLY i ON t (a)")
    assert statements[1].startswith("/* block")
    assert statements[1].endswith("""INSERT INTO t VALUES ('a;b', E'it\\'s;', "we;ird")""")
    assert statements[2] == "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql"
    assert statements[3] == "DO $$ BEGIN PERFORM 1; END $$"
