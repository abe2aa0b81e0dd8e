"""Artifact digests: exact algorithms, determinism, and every refusal."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.artifacts import (
    ArtifactDigests,
    DigestDifference,
    compare_digests,
    digest_artifacts,
    digest_image,
    digest_module_tree,
)
from orchestrator.contract import Artifacts
from orchestrator.errors import ConfigError

PINNED = "ghcr.io/acme/shop@sha256:" + "ab" * 32


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_migration_digests_are_sha256_of_each_file_keyed_by_workspace_path(
    workspace: Path, artifacts: Artifacts
) -> None:
    digests = digest_artifacts(artifacts, workspace)
    assert digests.migrations == (
        ("db/migrations/U1__init.sql", _sha(b"DROP TABLE orders;\n")),
        ("db/migrations/V1__init.sql", _sha(b"CREATE TABLE orders (id int);\n")),
    )
    assert [path for path, _ in digests.modules] == ["addons/sale_extras"]
    assert digests.image == PINNED and digests.image_pinned is True


def test_migration_folders_are_searched_recursively_and_a_file_listed_twice_counts_once(workspace: Path) -> None:
    nested = workspace / "db" / "migrations" / "2026"
    nested.mkdir()
    (nested / "V2__more.sql").write_text("SELECT 1;\n")
    (workspace / "db" / "migrations" / "README.md").write_text("not sql")
    listed = Artifacts(odoo_modules=(), migrations=(Path("db/migrations"), Path("db/migrations/V1__init.sql")))
    digests = digest_artifacts(listed, workspace)
    assert [p for p, _ in digests.migrations] == [
        "db/migrations/2026/V2__more.sql",
        "db/migrations/U1__init.sql",
        "db/migrations/V1__init.sql",
    ]


def test_module_tree_digest_follows_the_documented_stream(workspace: Path) -> None:
    module = workspace / "addons" / "sale_extras"
    stream = b""
    for rel in sorted(["__init__.py", "__manifest__.py", "views/sale.xml"]):
        stream += f"F - {rel}\0{_sha((module / rel).read_bytes())}\n".encode()
    assert digest_module_tree(module) == _sha(stream)


def test_module_digest_ignores_pycache_and_pyc_but_sees_exec_bit_and_content(workspace: Path) -> None:
    module = workspace / "addons" / "sale_extras"
    before = digest_module_tree(module)
    (module / "__pycache__").mkdir()
    (module / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0junk")
    (module / "stale.pyc").write_bytes(b"\0junk")
    assert digest_module_tree(module) == before

    os.chmod(module / "__init__.py", 0o755)
    with_exec = digest_module_tree(module)
    assert with_exec != before
    os.chmod(module / "__init__.py", 0o600)  # only the exec bit counts, not the rest of the mode
    assert digest_module_tree(module) == before

    (module / "views" / "sale.xml").write_text("<odoo></odoo>\n")
    assert digest_module_tree(module) != before


def test_module_digest_is_the_same_for_a_copy_elsewhere(workspace: Path, tmp_path: Path) -> None:
    module = workspace / "addons" / "sale_extras"
    copy = tmp_path / "elsewhere" / "sale_extras"
    shutil.copytree(module, copy)
    assert digest_module_tree(copy) == digest_module_tree(module)


def test_in_tree_symlink_is_recorded_as_a_link_not_followed(workspace: Path) -> None:
    module = workspace / "addons" / "sale_extras"
    before = digest_module_tree(module)
    (module / "static").symlink_to("views")  # a link to a directory inside: recorded, not walked twice
    with_link = digest_module_tree(module)
    assert with_link != before
    (module / "static").unlink()
    (module / "static").symlink_to("views/sale.xml")
    assert digest_module_tree(module) not in (before, with_link)


def test_symlink_leading_out_of_the_module_is_refused(workspace: Path, artifacts: Artifacts) -> None:
    module = workspace / "addons" / "sale_extras"
    (workspace / "secrets.env").write_text("TOKEN=x\n")
    (module / "data.env").symlink_to("../../secrets.env")
    with pytest.raises(ConfigError) as caught:
        digest_artifacts(artifacts, workspace)
    assert "artifacts.odoo_modules[0]: symlink data.env resolves to" in str(caught.value)
    assert "outside the module directory" in str(caught.value)


def test_symlinked_directory_leading_to_etc_is_refused(workspace: Path) -> None:
    module = workspace / "addons" / "sale_extras"
    (module / "views" / "etc").symlink_to("/etc")
    with pytest.raises(ConfigError, match=r"symlink views/etc resolves to /etc, outside the module directory"):
        digest_module_tree(module, field="artifacts.odoo_modules[0]")


def test_dangling_symlink_is_refused(workspace: Path) -> None:
    module = workspace / "addons" / "sale_extras"
    (module / "gone.xml").symlink_to("views/missing.xml")
    with pytest.raises(ConfigError, match=re.escape("symlink gone.xml is dangling")):
        digest_module_tree(module)


def test_paths_outside_the_workspace_are_refused_with_every_problem(workspace: Path, tmp_path: Path) -> None:
    (tmp_path / "outside.sql").write_text("DROP TABLE users;\n")
    (workspace / "db" / "escape").symlink_to(tmp_path)
    bad = Artifacts(
        odoo_modules=(Path("../"), Path("addons/missing")),
        migrations=(Path("../outside.sql"), Path("db/escape/outside.sql")),
    )
    with pytest.raises(ConfigError) as caught:
        digest_artifacts(bad, workspace)
    problems = caught.value.problems
    assert len(problems) == 4
    assert problems[0].startswith("artifacts.migrations[0]: ../outside.sql resolves to")
    assert "outside the workspace" in problems[0] and "outside the workspace" in problems[1]
    assert problems[2].startswith("artifacts.odoo_modules[0]: ..") and "outside the workspace" in problems[2]
    assert problems[3].startswith("artifacts.odoo_modules[1]: addons/missing does not exist")


def test_migrations_sharing_a_file_name_are_refused(workspace: Path) -> None:
    (workspace / "other").mkdir()
    (workspace / "other" / "V1__init.sql").write_text("SELECT 2;\n")
    both = Artifacts(odoo_modules=(), migrations=(Path("db/migrations"), Path("other")))
    expected = "db/migrations/V1__init.sql, other/V1__init.sql share the file name"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        digest_artifacts(both, workspace)


def test_image_by_digest_is_pinned_and_a_tag_next_to_it_is_dropped() -> None:
    hexes = "0123456789abcdef" * 4
    assert digest_image(f"registry:5000/team/app:1.2@sha256:{hexes}") == (
        f"registry:5000/team/app@sha256:{hexes}",
        True,
    )
    assert digest_image(f"app@sha256:{hexes}") == (f"app@sha256:{hexes}", True)
    assert digest_image("registry:5000/team/app:1.2") == ("registry:5000/team/app:1.2", False)
    assert digest_image("app@sha256:short") == ("app@sha256:short", False)


def test_image_by_tag_is_recorded_with_a_warning_that_says_how_to_pin(workspace: Path) -> None:
    warnings: list[str] = []

    class Log:
        def warn(self, message: str) -> None:
            warnings.append(message)

    plain = Artifacts(odoo_modules=(), migrations=(), docker_image="ghcr.io/acme/shop:1.4")
    digests = digest_artifacts(plain, workspace, log=Log())
    assert (digests.image, digests.image_pinned) == ("ghcr.io/acme/shop:1.4", False)
    assert len(warnings) == 1
    assert "tags move" in warnings[0] and "name@sha256:<hex>" in warnings[0]
    # The input overrides the config's image.
    assert digest_artifacts(plain, workspace, image=PINNED).image == PINNED


def test_compare_lists_every_difference_with_both_digests(workspace: Path, artifacts: Artifacts) -> None:
    validated = digest_artifacts(artifacts, workspace)
    (workspace / "db" / "migrations" / "V1__init.sql").write_text("CREATE TABLE orders (id int); DROP TABLE x;\n")
    (workspace / "db" / "migrations" / "U1__init.sql").unlink()
    (workspace / "db" / "migrations" / "V2__new.sql").write_text("SELECT 1;\n")
    now = replace(digest_artifacts(artifacts, workspace), image="ghcr.io/acme/shop:latest", image_pinned=False)
    old_v1 = dict(validated.migrations)["db/migrations/V1__init.sql"]
    new_v1 = dict(now.migrations)["db/migrations/V1__init.sql"]
    assert compare_digests(validated, now) == (
        DigestDifference("migration", "db/migrations/U1__init.sql", "dropped", _sha(b"DROP TABLE orders;\n"), None),
        DigestDifference("migration", "db/migrations/V1__init.sql", "changed", old_v1, new_v1),
        DigestDifference("migration", "db/migrations/V2__new.sql", "added", None, _sha(b"SELECT 1;\n")),
        DigestDifference("image", "image", "changed", PINNED, "ghcr.io/acme/shop:latest"),
    )
    assert compare_digests(validated, validated) == ()


def test_to_dict_round_trips_and_from_dict_rejects_bad_shapes(workspace: Path, artifacts: Artifacts) -> None:
    digests = digest_artifacts(artifacts, workspace)
    assert ArtifactDigests.from_dict(digests.to_dict()) == digests
    with pytest.raises(ValueError, match="`migrations` must map path strings"):
        ArtifactDigests.from_dict({"migrations": ["x"], "modules": {}})
    with pytest.raises(ValueError, match="expected an object"):
        ArtifactDigests.from_dict([])
    with pytest.raises(ValueError, match="`image` must be a string"):
        ArtifactDigests.from_dict({"image": 3})


def test_a_module_carrying_compiled_python_is_refused(workspace: Path) -> None:
    module = workspace / "addons" / "sale_extras"
    (module / "__pycache__").mkdir()
    (module / "__pycache__" / "models.cpython-311.pyc").write_bytes(b"\0not what was validated")
    with pytest.raises(ConfigError, match=r"contains compiled Python \(__pycache__/models.cpython-311.pyc\)"):
        digest_artifacts(Artifacts(odoo_modules=(Path("addons/sale_extras"),), migrations=()), workspace)


def test_app_spec_values_component_images_and_the_source_commit_round_trip_and_compare() -> None:
    validated = ArtifactDigests(
        migrations=(),
        modules=(),
        image=None,
        image_pinned=False,
        app_spec=(".do/app.yaml", "ab" * 32),
        app_spec_values=(("GREETING", "sha256:" + "01" * 32), ("TOKEN", "secret")),
        component_images=(("IMAGE_DIGEST_WORKER", "sha256:" + "cd" * 32),),
        source_commit="a1" * 20,
    )
    assert ArtifactDigests.from_dict(validated.to_dict()) == validated
    now = replace(
        validated,
        app_spec_values=(("GREETING", "sha256:" + "02" * 32),),
        component_images=(),
        source_commit="b2" * 20,
    )
    assert [d.describe() for d in compare_digests(validated, now)] == [
        f"component_image IMAGE_DIGEST_WORKER: dropped (validated digest sha256:{'cd' * 32}), missing now",
        f"app_spec_value ${{GREETING}}: changed, validated sha256:{'01' * 32}, now sha256:{'02' * 32}",
        "app_spec_value ${TOKEN}: dropped (validated digest secret), missing now",
        f"source_commit source commit: changed, validated {'a1' * 20}, now {'b2' * 20}",
    ]
