"""The GitHub peer answers as GitHub's REST description says and as api.github.com behaves, and our
client copes with the answers a friendlier peer never gave: 409, 202, 422, rate limits."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from orchestrator.github import GitHubClient, GitHubError
from orchestrator.github_api import GitHubApi
from orchestrator.redaction import Secret
from tests.peers import github_contract
from tests.peers.github_api import GitHubApiPeer

from .conftest import FAST, REPOSITORY

SHA = "a" * 40
DEPLOYMENTS = f"/repos/{REPOSITORY}/deployments"


def _post(peer: GitHubApiPeer, token: str, path: str, body: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    return requests.post(peer.url + path, data=json.dumps(body), headers=headers, timeout=5)


def _deploy(client: GitHubClient, ref: str = SHA) -> int:
    return client.create_deployment(ref, "production", transient=False, production=True, description="d", payload={})


def test_documents_carry_every_field_github_always_returns(client: GitHubClient, github_peer: GitHubApiPeer) -> None:
    deployment_id = _deploy(client)
    client.set_status(deployment_id, "success", environment_url="https://shop.example", log_url=None, description="ok")
    client.upsert_comment(4, "preview", "hello")

    deployment = github_peer.deployments[deployment_id]
    assert deployment["node_id"] and deployment["url"].endswith(f"/deployments/{deployment_id}")
    assert deployment["statuses_url"] == deployment["url"] + "/statuses"
    assert deployment["repository_url"] == f"{github_peer.url}/repos/{REPOSITORY}"
    assert deployment["creator"]["login"] == "github-actions[bot]" and deployment["creator"]["type"] == "Bot"
    assert {"id", "node_id", "avatar_url", "html_url", "repos_url", "site_admin"} <= set(deployment["creator"])
    (status,) = github_peer.statuses[deployment_id]
    assert status["deployment_url"] == deployment["url"] and status["node_id"]
    (comment,) = github_peer.comments[4]
    assert comment["issue_url"].endswith(f"/repos/{REPOSITORY}/issues/4") and comment["user"]["node_id"]


def test_every_answer_has_the_rate_limit_and_request_id_headers_and_201s_a_location(
    github_peer: GitHubApiPeer, token: str
) -> None:
    created = _post(github_peer, token, DEPLOYMENTS, {"ref": SHA, "required_contexts": []})
    assert created.status_code == 201
    assert created.headers["Location"] == created.json()["url"]
    assert created.headers["X-GitHub-Request-Id"]
    assert created.headers["x-ratelimit-limit"] == "5000"
    assert int(created.headers["x-ratelimit-remaining"]) < 5000
    assert int(created.headers["x-ratelimit-reset"]) > time.time()
    assert created.headers["x-ratelimit-resource"] == "core"
    refused = requests.get(github_peer.url + DEPLOYMENTS, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert refused.status_code == 401 and refused.headers["X-GitHub-Request-Id"]


def test_failing_required_contexts_are_a_409_naming_them(github_peer: GitHubApiPeer, token: str) -> None:
    github_peer.set_commit_status(SHA, "ci/test", "success")
    github_peer.set_commit_status(SHA, "security/scan", "failure")

    refused = _post(github_peer, token, DEPLOYMENTS, {"ref": SHA})
    named = _post(github_peer, token, DEPLOYMENTS, {"ref": SHA, "required_contexts": ["ci/test"]})

    assert refused.status_code == 409
    assert refused.json()["message"] == f"Conflict: Commit status checks failed for {SHA}."
    assert {"context": "security/scan", "state": "failure"} in refused.json()["errors"][0]["contexts"]
    assert named.status_code == 201
    assert len(github_peer.deployments) == 1


def test_our_client_deploys_an_exact_commit_past_failing_contexts(
    client: GitHubClient, github_peer: GitHubApiPeer
) -> None:
    """The orchestrator ran its own gates: GitHub's required contexts are not a second gate."""
    github_peer.set_commit_status(SHA, "security/scan", "failure")
    assert _deploy(client) in github_peer.deployments


def test_a_409_names_the_failing_contexts(github_peer: GitHubApiPeer, token: str) -> None:
    """A body that leaves GitHub's required contexts on (our client never sends one) meets a 409."""
    secret = Secret(token, "github-token")
    api = GitHubApi(github_peer.url, REPOSITORY, secret, timeout=2.0, retry=FAST, session=None, sleep=time.sleep)
    github_peer.set_commit_status(SHA, "security/scan", "failure")
    with pytest.raises(GitHubError, match=r"409 Conflict: Commit status checks failed .* security/scan=failure"):
        api.create("create deployment", github_peer.url + DEPLOYMENTS, {"ref": SHA}, lambda: None, lambda r: r)
    api.close()


def test_auto_merge_of_a_branch_behind_is_a_202_without_a_deployment(
    github_peer: GitHubApiPeer, token: str, client: GitHubClient
) -> None:
    github_peer.branches["topic"] = "b" * 40
    github_peer.behind.add("topic")

    merged = _post(github_peer, token, DEPLOYMENTS, {"ref": "topic", "required_contexts": []})

    assert merged.status_code == 202
    assert merged.json() == {"message": "Auto-merged main into topic on deployment."}
    assert github_peer.deployments == {}
    github_peer.behind.add("topic")
    assert github_peer.deployments[_deploy(client, "topic")]["sha"] == "b" * 40  # we never ask to auto-merge


def test_an_unknown_ref_is_refused_not_given_a_made_up_sha(client: GitHubClient, github_peer: GitHubApiPeer) -> None:
    with pytest.raises(GitHubError, match="422 No ref found for: release-9"):
        _deploy(client, "release-9")
    with pytest.raises(GitHubError, match="422 No ref found for: " + "d" * 40):
        _deploy(client, "d" * 40)
    assert github_peer.deployments == {}
    assert github_peer.deployments.get(_deploy(client, "main"), {}).get("sha") == github_peer.branches["main"]


def test_bodies_github_rejects_are_a_422(github_peer: GitHubApiPeer, token: str) -> None:
    wrong_type = _post(github_peer, token, DEPLOYMENTS, {"ref": SHA, "environment": 7})
    unknown_state = _post(github_peer, token, f"{DEPLOYMENTS}/1/statuses", {"state": "done"})

    assert wrong_type.status_code == 422 and "Invalid request" in wrong_type.json()["message"]
    assert unknown_state.status_code == 422
    assert github_peer.deployments == {}
    assert any("environment" in v or "7 is not of type" in v for v in github_peer.violations)
    github_peer.violations.clear()  # this test sent them on purpose


def test_per_page_is_capped_at_100_with_link_pagination(github_peer: GitHubApiPeer, token: str) -> None:
    for i in range(105):
        github_peer.add_comment(9, f"note {i}")
    headers = {"Authorization": f"Bearer {token}"}
    first = requests.get(
        f"{github_peer.url}/repos/{REPOSITORY}/issues/9/comments",
        params={"per_page": "500"},
        headers=headers,
        timeout=5,
    )
    assert len(first.json()) == 100
    assert parse_qs(urlsplit(first.links["next"]["url"]).query) == {"per_page": ["100"], "page": ["2"]}
    assert len(requests.get(first.links["next"]["url"], headers=headers, timeout=5).json()) == 5


def test_an_exhausted_primary_rate_limit_is_waited_out_until_the_reset(
    client: GitHubClient, github_peer: GitHubApiPeer
) -> None:
    github_peer.limits.remaining = 0
    github_peer.limits.reset = int(time.time()) + 1

    assert client.find_deployments("production") == []

    statuses = [s.path for s in github_peer.requests("GET", DEPLOYMENTS)]
    assert len(statuses) == 2  # refused once with x-ratelimit-remaining 0, then served after the reset


def test_the_contract_check_rejects_what_github_never_says() -> None:
    if not github_contract.is_available():
        pytest.fail(github_contract.MISSING)
    path = f"/repos/{REPOSITORY}/issues/3/comments"
    thin = json.dumps([{"id": 1, "body": "x", "user": {"login": "me"}}]).encode()
    problems = github_contract.check("GET", path, {"per_page": "100"}, b"", 200, thin)
    assert problems and "node_id" in problems[0]
    bad_error = json.dumps({"message": 5}).encode()
    assert github_contract.check("GET", path, {}, b"", 503, bad_error) == [
        f"response 503 to GET {path}: message: 5 is not of type 'string'"
    ]
    assert github_contract.validation_problems("POST", DEPLOYMENTS, json.dumps({"ref": 1}).encode())


def test_the_secondary_limit_on_writes_is_waited_out_after_retry_after(
    client: GitHubClient, github_peer: GitHubApiPeer
) -> None:
    github_peer.limits.secondary = (2, 1.0)
    first = _deploy(client)
    client.set_status(first, "in_progress", environment_url=None, log_url=None, description="x")

    client.set_status(first, "success", environment_url=None, log_url=None, description="ok")

    posts = github_peer.requests("POST", rf"{DEPLOYMENTS}/{first}/statuses")
    assert len(posts) == 3  # the second status was refused once (403, Retry-After: 1), then accepted
    assert [s["state"] for s in github_peer.statuses[first]] == ["in_progress", "success"]
