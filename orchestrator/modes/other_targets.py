"""The modes that work on a target beside production: a pull request's preview (mode preview and
preview-teardown, `preview.py`) and another app to delete (mode delete, `app_delete.py`). Each holds
the deploy lock of its own target, so it never waits for, or blocks, a production deploy.
"""

from __future__ import annotations

from orchestrator.app_delete import run_delete
from orchestrator.errors import ConfigError, DeployError
from orchestrator.platforms.base import PinsArtifacts
from orchestrator.preview import preview_target, run_preview, run_teardown
from orchestrator.recovery.deletes import target_recorder
from orchestrator.run_steps import RunSteps

__all__ = ["delete", "preview", "preview_teardown"]


def preview(steps: RunSteps) -> None:
    platform, state, parts = steps.platform, steps.state, steps.parts  # the CLI built it for the PR's target
    target = preview_target(steps.inputs, parts.env, run_url=parts.run_url)
    report = steps.pass_gates()
    if isinstance(platform, PinsArtifacts):
        platform.pin_artifacts(steps.inputs.version, report.digests)
    steps.lock(f"{steps.production_key()}/pr-{target.pr_number}")
    analysis = steps.config.verification.before_switch
    outcome = run_preview(
        platform, target, lambda url: parts.checks.release(url, analysis=analysis), parts.github, steps.log
    )
    state.probes.extend(outcome.probes)
    state.url = outcome.url
    state.extras["preview"] = {
        "pr_number": target.pr_number,
        "url": outcome.url,
        "github_deployment_id": outcome.github_deployment_id,
        "github_skipped": outcome.github_skipped,
    }
    if outcome.status != "success":
        raise DeployError(outcome.error or "the preview failed", operation=outcome.failed_step or "preview")
    state.succeeded()


def preview_teardown(steps: RunSteps) -> None:
    pr_number = steps.inputs.pr_number
    repository = steps.inputs.repository or steps.parts.env.get("GITHUB_REPOSITORY")
    if pr_number is None or repository is None:
        raise ConfigError("pr-number and GITHUB_REPOSITORY are needed to find the preview to remove")
    steps.lock(f"{steps.production_key()}/pr-{pr_number}")
    outcome = run_teardown(steps.platform, pr_number, steps.parts.github, steps.log)
    steps.state.extras["preview"] = {"pr_number": pr_number, "deleted": outcome.deleted}
    if outcome.status != "success":
        raise DeployError(outcome.error or "the preview teardown failed", operation="preview-teardown")
    steps.state.succeeded()


def delete(steps: RunSteps) -> None:
    """Another app removed by id or name, recorded before its DELETE so that recovery can finish it."""
    inputs = steps.inputs
    steps.lock(f"{steps.production_key()}/delete/{inputs.app_id or inputs.app_name}")
    steps.at("delete")
    parts = steps.parts
    record = target_recorder(
        parts.ledger_dsn if parts.ledger else None, steps.state.deployment_id, schema=steps.config.ledger.schema
    )
    outcome = run_delete(steps.platform, inputs, steps.config.deployment.platform, steps.log, record=record)
    steps.state.extras["deleted"] = outcome.to_dict()
    steps.state.succeeded()
