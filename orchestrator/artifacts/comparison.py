"""What differs between the digests a run validated and the digests of what it is about to deploy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from orchestrator.artifacts.digest_set import ArtifactDigests

__all__ = ["Change", "DigestDifference", "Kind", "compare_digests", "vouched_commit"]

Kind = Literal["migration", "module", "image", "app_spec", "app_spec_value", "component_image", "source_commit"]
"""What kind of artifact differs (the gate's refusal names it)."""
Change = Literal["added", "dropped", "changed"]
"""Added: not in the validated set; dropped: validated but missing now; changed: both, other digests."""


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
        differences.extend(_pair_differences(kind, old_pairs, new_pairs, shown=lambda path: path))
    if expected.image != actual.image:
        change = _change(expected.image, actual.image)
        differences.append(DigestDifference("image", "image", change, expected.image, actual.image))
    if expected.app_spec != actual.app_spec:
        was, now = expected.app_spec, actual.app_spec
        path = (now or was or ("app spec", ""))[0]
        before, after = (was[1] if was else None), (now[1] if now else None)
        differences.append(DigestDifference("app_spec", path, _change(before, after), before, after))
    differences.extend(
        _pair_differences(
            "app_spec_value", expected.app_spec_values, actual.app_spec_values, shown=lambda name: f"${{{name}}}"
        )
    )
    if expected.source_commit is not None and expected.source_commit != actual.source_commit:
        # A run that recorded no commit vouches for none: the deploy then carries no validated commit
        # (`vouched_commit`), so only images and files go out, and a build from git is refused.
        old_commit, new_commit = expected.source_commit, actual.source_commit
        differences.append(
            DigestDifference("source_commit", "source commit", _change(old_commit, new_commit), old_commit, new_commit)
        )
    return tuple(differences)


def vouched_commit(actual: ArtifactDigests, *vouchers: ArtifactDigests) -> ArtifactDigests:
    """`actual` with the source commit only if a validation record names it (`compare_digests` has
    held every record that names one to it): a commit nobody validated is never built from git."""
    if any(v.source_commit is not None for v in vouchers):
        return actual
    return replace(actual, source_commit=None)


def _pair_differences(
    kind: Kind,
    old_pairs: tuple[tuple[str, str], ...],
    new_pairs: tuple[tuple[str, str], ...],
    *,
    shown: Callable[[str], str],
) -> list[DigestDifference]:
    old, new = dict(old_pairs), dict(new_pairs)
    return [
        DigestDifference(kind, shown(key), _change(old.get(key), new.get(key)), old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


def _change(before: str | None, after: str | None) -> Change:
    return "added" if before is None else "dropped" if after is None else "changed"
