"""The git hosts App Platform builds from, as the simulator knows them: repositories, branches, heads.

App Platform takes a git source (`github: {repo, branch}`, `gitlab: {repo, branch}`, `git:
{repo_clone_url, branch}`) and builds whatever commit the branch points at when the deployment
starts; there is no field to name a commit. A test pushes commits here (`push`), and the simulator
resolves each component's source to a commit when it creates a deployment.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GIT_SOURCES", "GitHosts", "source_of"]

GIT_SOURCES = ("github", "gitlab", "bitbucket", "git")


def source_of(component: dict[str, Any]) -> tuple[str, str, bool] | None:
    """(repository, branch, deploy_on_push) of a component built from git, or None (an image)."""
    for kind in GIT_SOURCES:
        block = component.get(kind)
        if isinstance(block, dict):
            repo = str(block.get("repo") or block.get("repo_clone_url") or "")
            return repo, str(block.get("branch") or "main"), bool(block.get("deploy_on_push"))
    return None


@dataclass
class GitHosts:
    heads: dict[tuple[str, str], str] = field(default_factory=dict)
    """(repository, branch) -> the commit the branch points at."""
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def push(self, repo: str, branch: str = "main", sha: str | None = None) -> str:
        """A new commit on `branch` (a made-up sha unless given); returns it."""
        commit = sha or hashlib.sha1(f"{repo}@{branch}#{next(self._counter)}".encode()).hexdigest()
        self.heads[(repo, branch)] = commit
        return commit

    def head(self, repo: str, branch: str) -> str | None:
        return self.heads.get((repo, branch))
