"""`digest_artifacts`: every digest of one deploy, gathered from the workspace, the config and the run."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from orchestrator.app_spec import read_spec_file
from orchestrator.artifacts.digest_set import ArtifactDigests
from orchestrator.artifacts.image import digest_image, image_warning
from orchestrator.artifacts.migration_files import migration_files, same_file_name_problems
from orchestrator.artifacts.module_tree import digest_module_tree
from orchestrator.artifacts.workspace_files import resolve_in_workspace, sha256_file
from orchestrator.contract import Artifacts
from orchestrator.errors import ConfigError

__all__ = ["digest_artifacts"]

_log = logging.getLogger(__name__)


class _Warnings(Protocol):
    def warn(self, message: str) -> None: ...


def digest_artifacts(
    artifacts: Artifacts,
    workspace: Path,
    *,
    image: str | None = None,
    log: _Warnings | None = None,
    env: Mapping[str, str] | None = None,
    component_images: Mapping[str, str] | None = None,
    source_commit: str | None = None,
    read: Mapping[Path, str] | None = None,
) -> ArtifactDigests:
    """Digest every artifact of this deploy. `image` (the Action input) overrides `artifacts.docker_image`.

    `env` fills in the app spec's `${NAME}`s (the run's environment; the gates read none themselves);
    `component_images` are the run's `component_image_vars`. `read` holds the sha256 of migration
    files this run already read (resolved path -> digest of exactly the bytes it will run), so each
    is read once. Reads files only. An image given by tag is warned about on `log` (the run log), or
    else the module logger. Raises ConfigError listing every problem found.
    """
    root = workspace.resolve()
    problems: list[str] = []
    migrations = _digest_migrations(artifacts, root, read or {}, problems)
    modules = _digest_modules(artifacts, root, problems)
    reference = image if image is not None else artifacts.docker_image
    image_digest, pinned = digest_image(reference) if reference else (None, False)
    if problems:
        raise ConfigError(problems)
    app_spec: tuple[str, str] | None = None
    values: tuple[tuple[str, str], ...] = ()
    if artifacts.app_spec is not None:
        shown = artifacts.app_spec.as_posix()
        filled = read_spec_file(workspace / artifacts.app_spec, env or {}, shown=shown)
        app_spec, values = (shown, filled.file_sha256), filled.values
    digests = ArtifactDigests(
        migrations=tuple(sorted(migrations.items())),
        modules=tuple(sorted(modules.items())),
        image=image_digest,
        image_pinned=pinned,
        app_spec=app_spec,
        app_spec_values=values,
        component_images=tuple(sorted((component_images or {}).items())),
        source_commit=source_commit,
    )
    warning = image_warning(digests)
    if warning and log is not None:
        log.warn(warning)
    elif warning:
        _log.warning("%s", warning)
    return digests


def _digest_migrations(
    artifacts: Artifacts, root: Path, known: Mapping[Path, str], problems: list[str]
) -> dict[str, str]:
    migrations: dict[str, str] = {}
    seen: set[Path] = set()
    for index, entry in enumerate(artifacts.migrations):
        field = f"artifacts.migrations[{index}]"
        try:
            for key, file in migration_files(root, entry, field):
                if file not in seen:
                    seen.add(file)
                    migrations[key] = known.get(file) or sha256_file(file, field=field, shown=key)
        except ConfigError as exc:
            problems.extend(exc.problems)
    problems.extend(same_file_name_problems(migrations))
    return migrations


def _digest_modules(artifacts: Artifacts, root: Path, problems: list[str]) -> dict[str, str]:
    modules: dict[str, str] = {}
    for index, entry in enumerate(artifacts.odoo_modules):
        field = f"artifacts.odoo_modules[{index}]"
        try:
            key, directory = resolve_in_workspace(root, entry, field)
            if not directory.is_dir():
                raise ConfigError(f"{field}: {key} is not a directory; list Odoo module directories here")
            compiled = sorted(str(p.relative_to(directory)) for p in directory.rglob("*.pyc"))
            if compiled:
                # The digest leaves compiled files out, yet Python may run a .pyc instead of its source:
                # deploying one would run code nobody validated.
                raise ConfigError(
                    f"{field}: {key} contains compiled Python ({', '.join(compiled[:3])}"
                    f"{', ...' if len(compiled) > 3 else ''}); remove __pycache__ and *.pyc before deploying"
                )
            modules[key] = digest_module_tree(directory, field=field)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return modules
