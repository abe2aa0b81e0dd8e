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

One concept a module: `digest_set` (the record and its stored shape), `comparison` (what differs
from a validated set), `gathering` (`digest_artifacts`), `workspace_files`, `migration_files`,
`module_tree` and `image` (how each kind is found and digested).
"""

from orchestrator.artifacts.comparison import DigestDifference, compare_digests, vouched_commit
from orchestrator.artifacts.digest_set import ArtifactDigests
from orchestrator.artifacts.gathering import digest_artifacts
from orchestrator.artifacts.image import component_image_vars, digest_image, image_warning
from orchestrator.artifacts.module_tree import digest_module_tree
from orchestrator.artifacts.workspace_files import resolve_in_workspace

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
    "vouched_commit",
]
