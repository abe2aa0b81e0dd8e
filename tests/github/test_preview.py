"""The preview modes end to end: a real demo app per PR, the real health flow, the local GitHub API."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from orchestrator.contract import RunInputs
from orchestrator.errors import ConfigError
from orchestrator.github import GitHubClient, RetryPolicy
from orchestrator.github_updates import track_deployment
from orchestrator.preview import PreviewTarget, head_sha, preview_target, run_preview, run_teardown
from orchestrator.redaction import Secret
from orchestrator.runlog import RunLog
from tests.github.conftest import REPOSITORY, health_flow
from tests.github.demo_platform import DemoPreviewPlatform
from tests.peers.github_api import Fault, GitHubApiPeer

HEAD = "b" * 40
RUN_URL = "https://github.com/acme/shop/actions/runs/42"


def _target(version: str = "v1", pr: int = 7) -> PreviewTarget:
    return PreviewTarget(pr_number=pr, repository=REPOSITORY, version=version, image=None, ref=HEAD, run_url=RUN_URL)


def _comment(peer: GitHubApiPeer, pr: int = 7) -> str:
    (comment,) = peer.comments[pr]
    return str(comment["body"])


def _messages(log: RunLog) -> str:
    return "\n".join(e.message for e in log.entries)


def test_preview_is_created_checked_and_reported(
    demo_platform: DemoPreviewPlatform, client: GitHubClient, github_peer: GitHubApiPeer
) -> None:
    log = RunLog()
    outcome = run_preview(demo_platform, _target(), health_flow, client, log)

    assert outcome.status == "success", outcome.error
    assert outcome.url is not None and outcome.url.startswith("http://127.0.0.1:")
    assert outcome.probes and outcome.probes[-1].passed and outcome.probes[-1].status_code == 200
    assert outcome.github_skipped == ()
    deployment = github_peer.deployments[outcome.github_deployment_id or 0]
    assert (deployment["environment"], deployment["ref"]) == ("pr-7", HEAD)
    assert deployment["transient_environment"] is True and deployment["production_environment"] is False
    states = [(s["state"], s["environment_url"]) for s in github_peer.statuses[deployment["id"]]]
    assert states == [("in_progress", ""), ("success", outcome.url)]
    body = _comment(github_peer)
    assert body.startswith("<!-- deploy-orchestrator:preview -->\n### ✅ Preview ready")
    assert f"| URL | {outcome.url} |" in body
    assert "| Version | `v1` |" in body
    assert f"| Run | [logs]({RUN_URL}) |" in body
    assert "| /health | 200 |" in body


def test_next_push_updates_the_same_comment_and_adds_a_deployment(
    demo_platform: DemoPreviewPlatform, client: GitHubClient, github_peer: GitHubApiPeer
) -> None:
    first = run_preview(demo_platform, _target("v1"), health_flow, client, RunLog())
    second = run_preview(demo_platform, _target("v2"), health_flow, client, RunLog())

    assert (first.status, second.status) == ("success", "success")
    assert first.github_deployment_id != second.github_deployment_id
    # One active preview on the pull request: the earlier push's Deployment is inactive now.
    assert github_peer.statuses[first.github_deployment_id or 0][-1]["state"] == "inactive"
    assert github_peer.statuses[second.github_deployment_id or 0][-1]["state"] == "success"
    assert "| Version | `v2` |" in _comment(github_peer)
    assert demo_platform.running[7].version == "v2"


def test_unhealthy_preview_fails_its_deployment_and_says_so_on_the_pr(
    client: GitHubClient, github_peer: GitHubApiPeer
) -> None:
    platform = DemoPreviewPlatform(unhealthy=True)
    try:
        outcome = run_preview(platform, _target(), health_flow, client, RunLog())
    finally:
        platform.close()

    assert outcome.status == "failed"
    assert outcome.failed_step == "health"
    assert outcome.error is not None and "not healthy after 2 attempts" in outcome.error
    assert [p.status_code for p in outcome.probes] == [503, 503]
    (_, final) = github_peer.statuses[outcome.github_deployment_id or 0]
    assert final["state"] == "failure"
    assert final["description"].startswith("preview failed: health check failed")
    body = _comment(github_peer)
    assert "### ❌ Preview failed" in body
    assert "| 503 |" in body
    assert "left running for inspection" in body


def test_platform_failure_is_a_failed_outcome_and_a_failed_deployment(
    client: GitHubClient, github_peer: GitHubApiPeer
) -> None:
    outcome = run_preview(DemoPreviewPlatform(broken=True), _target(), health_flow, client, RunLog())
    assert (outcome.status, outcome.failed_step, outcome.url) == ("failed", "deploy", None)
    assert github_peer.statuses[outcome.github_deployment_id or 0][-1]["state"] == "failure"
    assert "preview platform unavailable" in _comment(github_peer)


def test_teardown_removes_the_preview_and_is_idempotent(
    demo_platform: DemoPreviewPlatform, client: GitHubClient, github_peer: GitHubApiPeer
) -> None:
    first = run_preview(demo_platform, _target("v1"), health_flow, client, RunLog())
    second = run_preview(demo_platform, _target("v2"), health_flow, client, RunLog())
    process = demo_platform.running[7].process

    removed = run_teardown(demo_platform, 7, client, RunLog())
    assert (removed.status, removed.deleted) == ("success", True)
    # The first push's Deployment went inactive when the second one went live; teardown ends the second.
    assert removed.deactivated == (second.github_deployment_id,)
    assert process.poll() is not None
    for deployment_id in (first.github_deployment_id, second.github_deployment_id):
        assert github_peer.statuses[deployment_id or 0][-1]["state"] == "inactive"
    assert "### 🧹 Preview removed (pr-7)" in _comment(github_peer)
    status_count = sum(len(s) for s in github_peer.statuses.values())

    again = run_teardown(demo_platform, 7, client, RunLog())
    assert (again.status, again.deleted, again.deactivated) == ("success", False, ())
    assert sum(len(s) for s in github_peer.statuses.values()) == status_count
    assert "No preview was running." in _comment(github_peer)


def test_token_canary_never_reaches_logs_comments_or_statuses(
    demo_platform: DemoPreviewPlatform,
    client: GitHubClient,
    github_peer: GitHubApiPeer,
    token: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    log = RunLog()
    github_peer.inject(Fault("POST", r"/repos/acme/shop/deployments", status=500, after=True))
    # The image reference carries the token, as a careless caller could: it must still not leak.
    target = PreviewTarget(7, REPOSITORY, "v1", f"registry.example/app:{token}", HEAD, RUN_URL)
    run_preview(demo_platform, target, health_flow, client, log)
    preview_comment = _comment(github_peer)
    run_teardown(demo_platform, 7, client, log)

    published = json.dumps([preview_comment, github_peer.comments, github_peer.statuses, github_peer.deployments])
    assert "| Image | `registry.example/app:***` |" in preview_comment
    assert "registry.example/app:***" in json.dumps(github_peer.deployments)
    for text in (published, caplog.text, _messages(log), *capsys.readouterr()):
        assert token not in text


def test_github_down_still_creates_the_preview_and_says_github_was_skipped(
    demo_platform: DemoPreviewPlatform, refused_url: str, token: str
) -> None:
    gh = GitHubClient(refused_url, REPOSITORY, Secret(token), retry=RetryPolicy(retries=2, initial_wait=0.01))
    log = RunLog()
    outcome = run_preview(demo_platform, _target(), health_flow, gh, log)

    assert outcome.status == "success"
    assert outcome.github_deployment_id is None
    assert outcome.github_skipped == ("Deployment", "PR comment")
    text = _messages(log)
    assert "GitHub: Deployment skipped: GitHub create deployment: no answer from" in text
    assert "GitHub: unavailable; the remaining GitHub updates of this run are skipped" in text
    assert "GitHub: skipped Deployment, PR comment; the preview itself is unaffected" in text

    removed = run_teardown(demo_platform, 7, gh, RunLog())
    assert (removed.status, removed.deleted) == ("success", True)
    assert removed.github_skipped == ("Deployments list", "PR comment")


def test_without_a_token_the_preview_runs_with_no_github_calls(demo_platform: DemoPreviewPlatform) -> None:
    log = RunLog()
    gh = GitHubClient.from_env({"GITHUB_REPOSITORY": REPOSITORY}, None, log_to=log)
    outcome = run_preview(demo_platform, _target(), health_flow, gh, log)
    assert outcome.status == "success"
    assert outcome.github_deployment_id is None
    assert "GitHub: no github-token input; Deployments and PR comments are skipped" in _messages(log)


@pytest.mark.parametrize(
    ("status", "state", "description", "environment_url"),
    [
        ("success", "success", "v2 is live", "https://shop.example"),
        ("failed", "failure", "verification failed", ""),
        ("rolled_back", "failure", "rolled back: verification failed", ""),
    ],
)
def test_deploy_mode_tracking_maps_the_outcome(
    client: GitHubClient,
    github_peer: GitHubApiPeer,
    status: str,
    state: str,
    description: str,
    environment_url: str,
) -> None:
    tracked = track_deployment(client, ref=HEAD, environment="production", description="deploy v2", log_url=RUN_URL)
    given = "v2 is live" if status == "success" else "verification failed"
    tracked.finish(status, "https://shop.example", RUN_URL, given)  # type: ignore[arg-type]

    deployment = github_peer.deployments[tracked.deployment_id or 0]
    assert deployment["production_environment"] is True and deployment["transient_environment"] is False
    statuses = github_peer.statuses[deployment["id"]]
    assert [s["state"] for s in statuses] == ["in_progress", state]
    assert (statuses[-1]["description"], statuses[-1]["environment_url"]) == (description, environment_url)


def test_deploy_mode_tracking_is_non_fatal_when_github_fails(client: GitHubClient, github_peer: GitHubApiPeer) -> None:
    log = RunLog()
    github_peer.inject(Fault("POST", r"/repos/acme/shop/deployments/\d+/statuses", status=500, times=20))
    tracked = track_deployment(client, ref=HEAD, environment="production", log_to=log)
    tracked.finish("success", "https://shop.example", None, "live")
    assert tracked.deployment_id is not None
    assert github_peer.statuses[tracked.deployment_id] == []
    assert tracked.updates.skipped == ["Deployment status in_progress", "Deployment status success"]


def test_preview_target_reads_the_pr_head_from_the_event(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"number": 7, "pull_request": {"head": {"sha": HEAD}}}))
    env = {"GITHUB_EVENT_PATH": str(event), "GITHUB_SHA": "c" * 40, "GITHUB_REPOSITORY": REPOSITORY}
    assert head_sha(env) == HEAD
    assert head_sha({"GITHUB_SHA": "c" * 40}) == "c" * 40
    inputs = RunInputs(
        mode="preview",
        workspace=tmp_path,
        config_path=tmp_path / "c.yml",
        validation_run_id=None,
        version="v1",
        pr_number=7,
    )
    target = preview_target(inputs, env, run_url=RUN_URL)
    assert (target.ref, target.repository, target.environment) == (HEAD, REPOSITORY, "pr-7")
    with pytest.raises(ConfigError, match="GITHUB_REPOSITORY: previews are named after the repository"):
        preview_target(inputs, {})
