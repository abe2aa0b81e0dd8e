"""Digests of what is being deployed: migration files, Odoo module trees, the image reference.

The gates compare these with the digests the ValidationAgent and the ComplianceValidator
recorded, so the upstream agents must compute them the same way. The algorithms, exactly:

- **Migration file**: sha256 (lowercase hex) of the file's bytes. `artifacts.migrations`
  lists files or directories; a directory contributes every `*.sql` file below it
  (recursively, as the migration runner finds them). The key is the file's
  workspace-relative POSIX path, e.g. `db/migrations/V1__init.sql`; a file reached twice
  (listed, and inside a listed directory) counts once, under the first path.
- **Odoo module tree**: sha256 (lowercase hex) of a stream with one record per entry of
  the module directory, sorted by the UTF-8 bytes of its module-relative POSIX path:
  a regular file is `F <x|-> <path>\\0<sha256 of its bytes>\\n` (`x`: any exec bit set;
  other mode bits differ between checkouts and are ignored); an in-tree symlink is
  `L - <path>\\0<readlink text>\\n` and is not followed: its target is itself in the tree
  and digested there, and recording the link (as git does) keeps a link to a directory
  from being walked twice or looping. Directories contribute only through their
  entries (an empty one is invisible), and `__pycache__` directories and `*.pyc` files are
  skipped: Odoo writes them at run time. The key is the workspace-relative POSIX path.
- **Image**: `name@sha256:<hex>` when pinned (a tag next to a digest is dropped: the
  registry serves by digest and ignores it); otherwise the reference exactly as given,
  with `image_pinned` False and a warning, since a tag can be moved to other content.
- **App spec** (`artifacts.app_spec`, DigitalOcean): sha256 of the file's bytes as written, and
  `app_spec_values`, one entry per `${NAME}` filled in from the environment (`app_spec.py`).
- **Source commit** (DigitalOcean, when the run knows it): the full commit sha the run validated
  (`GITHUB_SHA`; a preview: the pull request's head). App Platform builds a git source from its
  branch's head, so the adapter holds every component it builds to this commit.
- **Component images** (DigitalOcean, app_action's `IMAGE_DIGEST_<COMPONENT>`): `component_images`
  maps each such variable set in the environment to its digest. An `IMAGE_TAG_<COMPONENT>` is
  recorded as given and refused by the gate: a tag names no content (`gates.py`).

Refused with `ConfigError` (exit 2, nothing touched): a path that does not exist, a path
resolving outside the workspace, a symlink resolving outside its module directory (or a
dangling one), a special file (fifo, device, socket), two migration files with the same
file name (the migration runner identifies migrations by file name).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from orchestrator.app_spec import read_spec_file
from orchestrator.contract import Artifacts
from orchestrator.errors import ConfigError
from orchestrator.safe_files import DirectoryResolver, open_regular, resolve_safely

__all__ = [
    "ArtifactDigests",
    "DigestDifference",
    "compare_digests",
    "component_image_vars",
    "digest_artifacts",
    "digest_image",
    "digest_module_tree",
    "image_warning",
    "resolve_in_workspace",
]

_log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_IMAGE_DIGEST = re.compile(r"^(?P<name>[^@\s]+)@sha256:(?P<hex>[0-9a-f]{64})$")
_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc",)
_COMPONENT_IMAGE_VARS = ("IMAGE_DIGEST_", "IMAGE_TAG_")

Kind = Literal["migration", "module", "image", "app_spec", "app_spec_value", "component_image", "source_commit"]
Change = Literal["added", "dropped", "changed"]


@dataclass(frozen=True, slots=True)
class ArtifactDigests:
    """The digests of one set of artifacts; pairs are sorted by path."""

    migrations: tuple[tuple[str, str], ...]
    modules: tuple[tuple[str, str], ...]
    image: str | None
    image_pinned: bool
    app_spec: tuple[str, str] | None = None
    """(path, sha256) of the App Platform spec file deployed from the repository (`artifacts.app_spec`)."""
    app_spec_values: tuple[tuple[str, str], ...] = ()
    """(NAME, `sha256:<hex>` or `secret`) of every `${NAME}` the spec file was filled in with."""
    component_images: tuple[tuple[str, str], ...] = ()
    """(`IMAGE_DIGEST_<COMPONENT>` or `IMAGE_TAG_<COMPONENT>`, its value), sorted by variable."""
    source_commit: str | None = None
    """The commit this run validated; App Platform's git-source components must be built from it."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used in the result, the summary and the pipeline store's JSONB columns."""
        data: dict[str, Any] = {
            "migrations": dict(self.migrations),
            "modules": dict(self.modules),
            "image": self.image,
            "image_pinned": self.image_pinned,
        }
        if self.app_spec is not None:
            data["app_spec"] = dict([self.app_spec])
        if self.app_spec_values:
            data["app_spec_values"] = dict(self.app_spec_values)
        if self.component_images:
            data["component_images"] = dict(self.component_images)
        if self.source_commit is not None:
            data["source_commit"] = self.source_commit
        return data

    @classmethod
    def from_dict(cls, data: object) -> ArtifactDigests:
        """Parse `to_dict()` output (as stored by the upstream agents). Raises ValueError naming the field."""
        if not isinstance(data, dict):
            raise ValueError(f"artifact digests: expected an object, got {type(data).__name__}")
        pairs: dict[str, tuple[tuple[str, str], ...]] = {}
        for section in ("migrations", "modules"):
            raw = data.get(section, {})
            if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
                raise ValueError(f"artifact digests: `{section}` must map path strings to digest strings")
            pairs[section] = tuple(sorted(raw.items()))
        image = data.get("image")
        if image is not None and not isinstance(image, str):
            raise ValueError("artifact digests: `image` must be a string or null")
        pinned = data.get("image_pinned", image is not None and _IMAGE_DIGEST.match(image) is not None)
        if not isinstance(pinned, bool):
            raise ValueError("artifact digests: `image_pinned` must be a boolean")
        spec = data.get("app_spec")
        if spec is not None and (
            not isinstance(spec, dict) or len(spec) != 1 or not all(isinstance(x, str) for x in (*spec, *spec.values()))
        ):
            raise ValueError("artifact digests: `app_spec` must map one path string to its digest string")
        for section in ("app_spec_values", "component_images"):
            raw = data.get(section, {})
            if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
                raise ValueError(f"artifact digests: `{section}` must map name strings to value strings")
            pairs[section] = tuple(sorted(raw.items()))
        commit = data.get("source_commit")
        if commit is not None and not isinstance(commit, str):
            raise ValueError("artifact digests: `source_commit` must be a string or null")
        return cls(
            source_commit=commit,
            migrations=pairs["migrations"],
            modules=pairs["modules"],
            image=image,
            image_pinned=pinned,
            app_spec=next(iter(spec.items())) if spec else None,
            app_spec_values=pairs["app_spec_values"],
            component_images=pairs["component_images"],
        )


@dataclass(frozen=True, slots=True)
class DigestDifference:
    """One artifact that is not what was expected: added, dropped, or changed (both digests)."""

    kind: Kind
    path: str
    change: Change
    expected: str | None
    actual: str | None

    def describe(self) -> str:
        if self.change == "added":
            return f"{self.kind} {self.path}: added (digest {self.actual}), not in the validated set"
        if self.change == "dropped":
            return f"{self.kind} {self.path}: dropped (validated digest {self.expected}), missing now"
        return f"{self.kind} {self.path}: changed, validated {self.expected}, now {self.actual}"


def compare_digests(expected: ArtifactDigests, actual: ArtifactDigests) -> tuple[DigestDifference, ...]:
    """Every difference between two digest sets, migrations first, then modules, then the image."""
    differences: list[DigestDifference] = []
    sections: tuple[tuple[Kind, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]], ...] = (
        ("migration", expected.migrations, actual.migrations),
        ("module", expected.modules, actual.modules),
        ("component_image", expected.component_images, actual.component_images),
    )
    for kind, old_pairs, new_pairs in sections:
        old, new = dict(old_pairs), dict(new_pairs)
        for path in sorted(old.keys() | new.keys()):
            before, after = old.get(path), new.get(path)
            if before == after:
                continue
            change: Change = "added" if before is None else "dropped" if after is None else "changed"
            differences.append(DigestDifference(kind, path, change, before, after))
    if expected.image != actual.image:
        change = "added" if expected.image is None else "dropped" if actual.image is None else "changed"
        differences.append(DigestDifference("image", "image", change, expected.image, actual.image))
    if expected.app_spec != actual.app_spec:
        was, now = expected.app_spec, actual.app_spec
        change = "added" if was is None else "dropped" if now is None else "changed"
        path = (now or was or ("app spec", ""))[0]
        differences.append(DigestDifference("app_spec", path, change, was[1] if was else None, now[1] if now else None))
    old, new = dict(expected.app_spec_values), dict(actual.app_spec_values)
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before != after:
            change = "added" if before is None else "dropped" if after is None else "changed"
            differences.append(DigestDifference("app_spec_value", f"${{{name}}}", change, before, after))
    if expected.source_commit is not None and expected.source_commit != actual.source_commit:
        # A run that recorded no commit vouches for none: the deploy then carries no validated commit
        # (`vouched_commit`), so only images and files go out, and a build from git is refused.
        old_commit, new_commit = expected.source_commit, actual.source_commit
        change = "dropped" if new_commit is None else "changed"
        differences.append(DigestDifference("source_commit", "source commit", change, old_commit, new_commit))
    return tuple(differences)


class _Warnings(Protocol):
    def warn(self, message: str) -> None: ...


def vouched_commit(actual: ArtifactDigests, *vouchers: ArtifactDigests) -> ArtifactDigests:
    """`actual` with the source commit only if a validation record names it (`compare_digests` has
    held every record that names one to it): a commit nobody validated is never built from git."""
    if any(v.source_commit is not None for v in vouchers):
        return actual
    return replace(actual, source_commit=None)


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
    known = read or {}
    root = workspace.resolve()
    problems: list[str] = []
    migrations: dict[str, str] = {}
    seen: set[Path] = set()
    for index, entry in enumerate(artifacts.migrations):
        field = f"artifacts.migrations[{index}]"
        try:
            for key, file in _migration_files(root, entry, field):
                if file not in seen:
                    seen.add(file)
                    migrations[key] = known.get(file) or _sha256_file(file, field=field, shown=key)
        except ConfigError as exc:
            problems.extend(exc.problems)
    problems.extend(_same_basename_problems(migrations))

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


_TAG_WARNING = (
    "tags move, so the gate can only compare the tag text, not the content; pin the image by digest "
    "(name@sha256:<hex>, shown by `docker buildx imagetools inspect <image>` or the registry) "
    "and have the ValidationAgent record that digest"
)


def component_image_vars(env: Mapping[str, str], platform: str = "digitalocean") -> dict[str, str]:
    """app_action's per-component image variables set in `env`: `IMAGE_DIGEST_<COMPONENT>`, or
    `IMAGE_TAG_<COMPONENT>` for a component with no digest variable (a digest wins, as in app_action).
    Only App Platform reads them: on any other platform there are none. Raises ConfigError for a
    digest that is not `sha256:<64 lowercase hex digits>`."""
    if platform != "digitalocean":
        return {}
    found = {k: v.strip() for k, v in env.items() if k.startswith(_COMPONENT_IMAGE_VARS) and v.strip()}
    problems = [
        f"{name}: {value!r} is not an image digest; it should be sha256:<64 lowercase hex digits>"
        for name, value in sorted(found.items())
        if name.startswith("IMAGE_DIGEST_") and not re.fullmatch(r"sha256:[0-9a-f]{64}", value)
    ]
    if problems:
        raise ConfigError(problems)
    digested = {name.removeprefix("IMAGE_DIGEST_") for name in found if name.startswith("IMAGE_DIGEST_")}
    return {k: v for k, v in found.items() if not (k.startswith("IMAGE_TAG_") and k[10:] in digested)}


def digest_image(reference: str) -> tuple[str, bool]:
    """(recorded reference, pinned). A pinned reference keeps `name@sha256:<hex>` and drops any tag."""
    match = _IMAGE_DIGEST.match(reference)
    if match is None:
        return reference, False
    name = match.group("name")
    # A tag after the last path segment (`repo:1.2@sha256:...`); a registry port (`host:5000/repo`) is not one.
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return f"{name}@sha256:{match.group('hex')}", True


def image_warning(digests: ArtifactDigests) -> str | None:
    """The warning for an unpinned image, or None."""
    if digests.image is None or digests.image_pinned:
        return None
    return f"image {digests.image} is given by tag: {_TAG_WARNING}"


def digest_module_tree(directory: Path, *, field: str = "module") -> str:
    """The tree digest of one module directory (algorithm in the module docstring). Raises ConfigError."""
    top = directory.resolve()
    digest = hashlib.sha256()
    for relative, path in sorted(_tree_entries(top, top, field), key=lambda item: item[0].encode()):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            digest.update(f"L - {relative}\0{os.readlink(path)}\n".encode())
        else:
            executable = "x" if info.st_mode & 0o111 else "-"
            digest.update(f"F {executable} {relative}\0{_sha256_file(path, field=field, shown=relative)}\n".encode())
    return digest.hexdigest()


def _tree_entries(top: Path, directory: Path, field: str) -> Iterator[tuple[str, Path]]:
    with os.scandir(directory) as scan:
        entries = list(scan)
    for entry in entries:
        path = Path(entry.path)
        relative = path.relative_to(top).as_posix()
        if entry.is_symlink():
            target = resolve_safely(path, field=field, shown=f"symlink {relative}")
            if not target.is_relative_to(top):
                raise ConfigError(
                    f"{field}: symlink {relative} resolves to {target}, outside the module directory {top}; "
                    "replace it with the file itself (a deploy ships only what is inside the module)"
                )
            if not target.exists():
                raise ConfigError(f"{field}: symlink {relative} is dangling (target {target} does not exist)")
            yield relative, path
        elif entry.is_dir(follow_symlinks=False):
            if entry.name not in _SKIPPED_DIRS:
                yield from _tree_entries(top, path, field)
        elif entry.is_file(follow_symlinks=False):
            if not entry.name.endswith(_SKIPPED_SUFFIXES):
                yield relative, path
        else:
            raise ConfigError(f"{field}: {relative} is not a regular file, directory or symlink; remove it")


def _migration_files(root: Path, entry: Path, field: str) -> Iterator[tuple[str, Path]]:
    key, path = resolve_in_workspace(root, entry, field)
    if path.is_dir():
        folder = root / key
        resolver = DirectoryResolver(field=field)
        for file in sorted(folder.rglob("*.sql")):
            if not file.is_dir():
                file_key, resolved = resolve_in_workspace(root, file, field, resolver=resolver)
                if not resolved.is_file():
                    raise ConfigError(f"{field}: {file_key} is not a regular file")
                yield file_key, resolved
    elif path.is_file():
        yield key, path
    else:
        raise ConfigError(f"{field}: {key} is neither a file nor a directory")


def resolve_in_workspace(
    root: Path, entry: Path, field: str, *, resolver: DirectoryResolver | None = None
) -> tuple[str, Path]:
    """(workspace-relative POSIX key, resolved path) of an existing path; `root` must be resolved.

    The key is how digests name the artifact. Raises ConfigError (naming `field`) when the path
    does not exist or resolves outside the workspace. `resolver` resolves many files of a few directories.
    """
    lexical = entry if entry.is_absolute() else root / entry
    if resolver is not None:
        resolved = resolver.resolve(lexical, shown=str(entry))
    else:
        resolved = resolve_safely(lexical, field=field, shown=str(entry))
    if not resolved.is_relative_to(root):
        raise ConfigError(
            f"{field}: {entry} resolves to {resolved}, outside the workspace {root}; "
            "artifacts must live in the repository being deployed"
        )
    if not resolved.exists():
        raise ConfigError(f"{field}: {entry} does not exist in the workspace {root}")
    # The key follows the path as written (a symlinked folder keeps its own name), unless it
    # only reaches the workspace through resolution (an absolute path via a symlinked root).
    normalised = Path(os.path.normpath(lexical))
    base = normalised if normalised.is_relative_to(root) else resolved
    return base.relative_to(root).as_posix(), resolved


def _same_basename_problems(migrations: dict[str, str]) -> list[str]:
    by_name: dict[str, list[str]] = {}
    for key in migrations:
        by_name.setdefault(key.rsplit("/", 1)[-1], []).append(key)
    return [
        f"artifacts.migrations: {', '.join(sorted(keys))} share the file name {name}; "
        "the migration runner identifies migrations by file name, so rename one"
        for name, keys in sorted(by_name.items())
        if len(keys) > 1
    ]


def _sha256_file(path: Path, *, field: str, shown: str) -> str:
    digest = hashlib.sha256()
    with open_regular(path, field=field, shown=shown) as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
