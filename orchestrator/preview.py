"""The preview modes, platform-neutral: a per-PR release, its URL on the PR, and its removal.

A preview is the same platform on another target (`pr-<N>`, see `platforms.registry.Target`): the
CLI builds the platform for that target, and this module deploys into it as into production.

    preview:           Deployment `pr-<N>` (transient) in_progress → start the release on the
                       target (all its traffic, older ones stopped) → health flow on its URL →
                       status success (with the URL) or failure → sticky PR comment
    preview-teardown:  remove the target (idempotent) → every `pr-<N>` Deployment inactive
                       (GitHub shows a transient environment as destroyed) → comment "removed"

GitHub only mirrors the outcome: with no token, or GitHub down, the preview is still created
(or removed) and the outcome lists what was skipped. A preview that fails its health checks is
left running for inspection; closing the PR removes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Literal

from orchestrator.contract import HealthProbe, RunInputs
from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.github import GitHubClient, LogSink
from orchestrator.github_event import read_event
from orchestrator.github_updates import GitHubUpdates, track_deployment
from orchestrator.health.verdict import CheckVerdict
from orchestrator.platforms.base import Platform, Previews, Release, Retirement, TrafficRouter
from orchestrator.redaction import mask_url
from orchestrator.runlog import utc_now

__all__ = [
    "COMMENT_MARKER",
    "PreviewOutcome",
    "PreviewTarget",
    "TeardownOutcome",
    "deploy_preview",
    "environment_name",
    "head_sha",
    "preview_target",
    "run_preview",
    "run_teardown",
]

COMMENT_MARKER = "preview"
_SHOWN_PROBES = 10
PreviewStatus = Literal["success", "failed"]


@dataclass(frozen=True, slots=True)
class PreviewTarget:
    """What one preview run is about, resolved from the inputs and the runner's environment."""

    pr_number: int
    repository: str
    version: str
    image: str | None
    ref: str
    """The commit the Deployment names: the PR head, not the merge commit in GITHUB_SHA."""
    run_url: str | None = None

    @property
    def environment(self) -> str:
        return environment_name(self.pr_number)


@dataclass(frozen=True, slots=True)
class PreviewOutcome:
    status: PreviewStatus
    version: str
    url: str | None
    probes: tuple[HealthProbe, ...]
    github_deployment_id: int | None
    error: str | None = None
    failed_step: str | None = None
    """`deploy` (the platform could not create it) or `health` (it did not pass its checks)."""
    github_skipped: tuple[str, ...] = ()
    """GitHub updates lost (no token, GitHub down, missing permission); empty when all went through."""


@dataclass(frozen=True, slots=True)
class TeardownOutcome:
    status: PreviewStatus
    deleted: bool
    """False when the preview was already gone (teardown is idempotent)."""
    deactivated: tuple[int, ...]
    """GitHub Deployments this run marked inactive."""
    error: str | None = None
    github_skipped: tuple[str, ...] = ()


def environment_name(pr_number: int) -> str:
    return f"pr-{pr_number}"


def head_sha(env: Mapping[str, str]) -> str | None:
    """The PR head sha from the event payload (`pull_request.head.sha`), else GITHUB_SHA."""
    return read_event(env).head_sha or env.get("GITHUB_SHA") or None


def preview_target(inputs: RunInputs, env: Mapping[str, str], *, run_url: str | None = None) -> PreviewTarget:
    """Resolve the preview's target. Raises ConfigError naming the missing input."""
    problems = []
    if inputs.pr_number is None:
        problems.append("pr-number: required in preview modes (run on pull_request events or pass --pr-number)")
    repository = inputs.repository or env.get("GITHUB_REPOSITORY")
    if not repository:
        problems.append("GITHUB_REPOSITORY: previews are named after the repository; set it to owner/name")
    if problems:
        raise ConfigError(problems)
    assert inputs.pr_number is not None and repository
    return PreviewTarget(
        pr_number=inputs.pr_number,
        repository=repository,
        version=inputs.version,
        image=inputs.image,
        ref=head_sha(env) or inputs.version,
        run_url=run_url,
    )


def deploy_preview(platform: Platform, version: str, image: str | None) -> Release:
    """Make `version` the preview target's only release; return it with the target's URL in `url`.
    Idempotent per version. Raises DeployError (ConfigError when the platform needs an image)."""
    release = platform.start(version, image)
    if isinstance(platform, TrafficRouter):
        platform.route({version: 100})
    if isinstance(platform, Retirement):
        platform.retire(keep=0)
    return Release(release.version, url=platform.live_url(), image=release.image, ref=release.ref)


def run_preview(
    platform: Platform,
    target: PreviewTarget,
    check: Callable[[str], CheckVerdict],
    github: GitHubClient | GitHubUpdates | None,
    log: LogSink,
) -> PreviewOutcome:
    """Create or update the PR's preview, check it, and report it on the PR and as a Deployment.

    `check(url)` is the health flow against the preview's own URL. Platform and health failures
    come back as a `failed` outcome (exit 1 for the caller); GitHub failures are only logged.
    """
    updates = github if isinstance(github, GitHubUpdates) else GitHubUpdates(github, log)
    tracked = track_deployment(
        updates,
        ref=target.ref,
        environment=target.environment,
        production=False,
        transient=True,
        description=f"preview of {target.version} for PR #{target.pr_number}",
        payload={"pr_number": target.pr_number, "version": target.version, "image": target.image},
        log_url=target.run_url,
    )
    log.info(f"preview: creating {target.environment} ({target.version})")
    url: str | None = None
    probes: tuple[HealthProbe, ...] = ()
    error: str | None = None
    failed_step: str | None = None
    try:
        release = deploy_preview(platform, target.version, target.image)
        url = release.url
        if url is None:
            error, failed_step = "the platform returned no URL for the preview", "deploy"
        else:
            log.info(f"preview: {target.environment} is up at {mask_url(url)}; checking its health")
            verdict = check(url)
            probes = tuple(p.during("preview", target.version) for p in verdict.probes)
            if not verdict.passed:
                error, failed_step = f"health check failed: {verdict.reason or 'no reason given'}", "health"
    except OrchestratorError as exc:
        error, failed_step = str(exc), exc.step
    except Exception:
        tracked.finish("failed", None, target.run_url, "preview failed: unexpected error (see the run log)")
        raise
    status: PreviewStatus = "failed" if error else "success"
    if error:
        log.warn(f"preview: {target.environment} failed: {error}")
        tracked.finish("failed", None, target.run_url, f"preview failed: {error}")
    else:
        log.info(f"preview: {target.environment} is healthy at {mask_url(url or '')}")
        tracked.finish("success", url, target.run_url, f"preview of {target.version} is live")
        # Transient environments are not deactivated by GitHub's auto_inactive: without this, the pull
        # request would list one active preview per push instead of the one that serves.
        if tracked.deployment_id is not None:
            _deactivate_all(updates, target.environment, keep=tracked.deployment_id)
    body = _preview_comment(target, status, url, probes, error)
    updates.run("PR comment", lambda gh: gh.upsert_comment(target.pr_number, COMMENT_MARKER, body))
    _note_skipped(updates, log)
    return PreviewOutcome(
        status=status,
        version=target.version,
        url=url,
        probes=probes,
        github_deployment_id=tracked.deployment_id,
        error=error,
        failed_step=failed_step,
        github_skipped=tuple(updates.skipped),
    )


def run_teardown(
    platform: Platform,
    pr_number: int,
    github: GitHubClient | GitHubUpdates | None,
    log: LogSink,
) -> TeardownOutcome:
    """Remove the PR's preview, mark its Deployments inactive and say so on the PR. Idempotent.

    A platform failure comes back as a `failed` outcome and leaves the Deployments as they were
    (the preview still exists); GitHub failures are only logged.
    """
    if not isinstance(platform, Previews):
        raise ConfigError(f"mode: {platform.name} has no pull-request previews to remove")
    updates = github if isinstance(github, GitHubUpdates) else GitHubUpdates(github, log)
    environment = environment_name(pr_number)
    try:
        deleted = platform.remove()
    except OrchestratorError as exc:
        log.warn(f"preview-teardown: removing {environment} failed: {exc}")
        body = _teardown_comment(environment, f"Removing the preview failed: {exc}")
        updates.run("PR comment", lambda gh: gh.upsert_comment(pr_number, COMMENT_MARKER, body))
        _note_skipped(updates, log)
        return TeardownOutcome("failed", False, (), str(exc), tuple(updates.skipped))
    log.info(f"preview-teardown: {environment} {'removed' if deleted else 'was already gone'}")
    deactivated = _deactivate_all(updates, environment)
    body = _teardown_comment(environment, "The preview was removed." if deleted else "No preview was running.")
    updates.run("PR comment", lambda gh: gh.upsert_comment(pr_number, COMMENT_MARKER, body))
    _note_skipped(updates, log)
    return TeardownOutcome("success", deleted, tuple(deactivated), None, tuple(updates.skipped))


def _deactivate_all(updates: GitHubUpdates, environment: str, *, keep: int | None = None) -> list[int]:
    """Mark every Deployment to `environment` but `keep` inactive; return the ones this call changed."""
    deactivated: list[int] = []
    for deployment_id in updates.run("Deployments list", lambda gh: gh.find_deployments(environment)) or []:
        # One already inactive (a second teardown, an earlier push's) is left as it is.
        if deployment_id == keep:
            continue
        if updates.run("Deployment state", partial(_state, deployment_id=deployment_id)) == "inactive":
            continue
        if updates.run("Deployment status inactive", partial(_deactivate, deployment_id=deployment_id)):
            deactivated.append(deployment_id)
    return deactivated


# --- the comment ------------------------------------------------------------------------------


def _preview_comment(
    target: PreviewTarget, status: PreviewStatus, url: str | None, probes: tuple[HealthProbe, ...], error: str | None
) -> str:
    if status == "success":
        lines = ["### ✅ Preview ready", ""]
    else:
        lines = ["### ❌ Preview failed", "", f"> {_cell(error or 'unknown error')}", ""]
    lines += ["| | |", "|---|---|"]
    if url:
        lines.append(f"| URL | {_cell(mask_url(url))} |")
    lines += [f"| Version | `{_cell(target.version)}` |", f"| Commit | `{_cell(target.ref[:12])}` |"]
    if target.image:
        lines.append(f"| Image | `{_cell(target.image)}` |")
    if target.run_url:
        lines.append(f"| Run | [logs]({target.run_url}) |")
    lines += ["", *_checks_table(probes)]
    if status == "failed" and url:
        lines += ["", "The failing preview is left running for inspection; closing the PR removes it."]
    lines += ["", f"<sub>Updated {utc_now()} by deploy-orchestrator.</sub>"]
    return "\n".join(lines)


def _checks_table(probes: tuple[HealthProbe, ...]) -> list[str]:
    if not probes:
        return ["No health checks ran."]
    lines = ["**Checks**", "", "| check | status | time | result |", "|---|---|---|---|"]
    shown = probes[-_SHOWN_PROBES:]
    for probe in shown:
        result = "✅ passed" if probe.passed else f"❌ {_cell(probe.detail or 'failed')}"
        code = str(probe.status_code) if probe.status_code else "-"
        lines.append(f"| {_cell(mask_url(probe.endpoint))} | {code} | {probe.response_time_ms:.0f} ms | {result} |")
    if len(probes) > len(shown):
        lines.append(f"| … {len(probes) - len(shown)} earlier attempts | | | |")
    return lines


def _teardown_comment(environment: str, what: str) -> str:
    return "\n".join(
        [
            f"### 🧹 Preview removed ({environment})",
            "",
            what,
            "",
            f"<sub>Updated {utc_now()} by deploy-orchestrator.</sub>",
        ]
    )


def _cell(text: str) -> str:
    """Text that cannot break a Markdown table row."""
    return " ".join(text.split()).replace("|", "\\|")


def _state(github: GitHubClient, *, deployment_id: int) -> str | None:
    return github.deployment_state(deployment_id)


def _deactivate(github: GitHubClient, *, deployment_id: int) -> bool:
    github.set_status(
        deployment_id, "inactive", environment_url=None, log_url=None, description="preview removed: the PR was closed"
    )
    return True


def _note_skipped(updates: GitHubUpdates, log: LogSink) -> None:
    if not updates.enabled:
        return
    if updates.skipped:
        log.warn(f"GitHub: skipped {', '.join(updates.skipped)}; the preview itself is unaffected")
