"""The GitHub client against a real local GitHub API: Deployments, statuses, the sticky comment, faults."""

from __future__ import annotations

import logging
import time

import pytest

from orchestrator.github import GitHubClient, GitHubError, RetryPolicy, marker_tag
from orchestrator.redaction import Secret
from tests.github.conftest import FAST, REPOSITORY
from tests.peers.github_api import Fault, GitHubApiPeer, rate_limited

SHA = "a" * 40
DEPLOYMENTS = r"/repos/acme/shop/deployments"


class Lines:
    """A LogSink that keeps what it was told."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str) -> None:
        self.lines.append(("info", message))

    def warn(self, message: str) -> None:
        self.lines.append(("warn", message))


def test_deployment_lifecycle_records_statuses_in_order(client: GitHubClient, github_peer: GitHubApiPeer) -> None:
    deployment_id = client.create_deployment(
        SHA, "production", transient=False, production=True, description="deploy v2", payload={"version": "v2"}
    )
    client.set_status(deployment_id, "in_progress", environment_url=None, log_url="https://ci/run/1", description="x")
    client.set_status(
        deployment_id, "success", environment_url="https://shop.example", log_url="https://ci/run/1", description="ok"
    )

    deployment = github_peer.deployments[deployment_id]
    assert deployment["ref"] == SHA
    assert deployment["environment"] == "production"
    assert deployment["production_environment"] is True
    assert deployment["transient_environment"] is False
    (sent,) = github_peer.requests("POST", DEPLOYMENTS)
    assert sent.body["auto_merge"] is False
    assert sent.body["required_contexts"] == []
    assert deployment["payload"]["version"] == "v2"
    states = [(s["state"], s["environment_url"], s["log_url"]) for s in github_peer.statuses[deployment_id]]
    assert states == [("in_progress", "", "https://ci/run/1"), ("success", "https://shop.example", "https://ci/run/1")]
    assert client.deployment_state(deployment_id) == "success"
    assert client.find_deployments("production") == [deployment_id]
    assert client.find_deployments("pr-1") == []


def test_every_request_carries_the_github_headers(client: GitHubClient, github_peer: GitHubApiPeer, token: str) -> None:
    client.find_deployments("production")
    (seen,) = github_peer.requests("GET", DEPLOYMENTS)
    assert seen.headers["authorization"] == f"Bearer {token}"
    assert seen.headers["accept"] == "application/vnd.github+json"
    assert seen.headers["x-github-api-version"] == "2022-11-28"
    assert seen.headers["user-agent"] == "deploy-orchestrator"


def test_status_description_is_cut_to_140_characters(client: GitHubClient, github_peer: GitHubApiPeer) -> None:
    deployment_id = client.create_deployment(
        SHA, "production", transient=False, production=True, description="d" * 300, payload={}
    )
    client.set_status(deployment_id, "failure", environment_url=None, log_url=None, description="why " * 100)
    (status,) = github_peer.statuses[deployment_id]
    assert len(status["description"]) == 140
    assert status["description"].endswith("…")
    assert len(github_peer.deployments[deployment_id]["description"]) == 140


def test_deployments_are_listed_across_pages(client: GitHubClient, github_peer: GitHubApiPeer) -> None:
    github_peer.commits |= {f"{i:040x}" for i in range(103)}
    ids = [
        client.create_deployment(f"{i:040x}", "pr-7", transient=True, production=False, description="", payload={})
        for i in range(103)
    ]
    client.create_deployment(SHA, "production", transient=False, production=True, description="", payload={})
    assert client.find_deployments("pr-7") == list(reversed(ids))
    assert len(github_peer.requests("GET", DEPLOYMENTS)) == 2


def test_sticky_comment_is_created_once_then_edited_on_page_two(
    client: GitHubClient, github_peer: GitHubApiPeer
) -> None:
    github_peer.add_comment(12, "LGTM")
    first = client.upsert_comment(12, "preview", "version v1")
    for i in range(120):
        github_peer.add_comment(12, f"review note {i}")
    second = client.upsert_comment(12, "preview", "version v2")

    assert second == first
    ours = [c for c in github_peer.comments[12] if marker_tag("preview") in c["body"]]
    assert len(ours) == 1
    assert ours[0]["body"] == "<!-- deploy-orchestrator:preview -->\nversion v2"
    assert len(github_peer.comments[12]) == 122
    # Our comment is the second of 122: found on the first page of 100 this time, so move it to page 2.
    github_peer.comments[12] = [c for c in github_peer.comments[12] if c["id"] != first] + ours
    third = client.upsert_comment(12, "preview", "version v3")
    assert third == first
    assert github_peer.comments[12][-1]["body"].endswith("version v3")
    listing = github_peer.requests("GET", r"/repos/acme/shop/issues/12/comments")
    assert {s.query.get("page") for s in listing} >= {"2"}
    assert len(github_peer.requests("POST", r"/repos/acme/shop/issues/12/comments")) == 1


def test_other_markers_get_their_own_comment(client: GitHubClient, github_peer: GitHubApiPeer) -> None:
    a = client.upsert_comment(3, "preview", "a")
    b = client.upsert_comment(3, "deploy:production", "b")
    assert a != b
    assert len(github_peer.comments[3]) == 2
    with pytest.raises(ValueError, match="comment marker"):
        client.upsert_comment(3, "x -->", "c")


def test_a_500_is_retried(client: GitHubClient, github_peer: GitHubApiPeer) -> None:
    github_peer.inject(Fault("GET", DEPLOYMENTS, status=502))
    assert client.find_deployments("production") == []
    assert len(github_peer.requests("GET", DEPLOYMENTS)) == 2


def test_secondary_rate_limit_waits_for_retry_after(client: GitHubClient, github_peer: GitHubApiPeer) -> None:
    github_peer.inject(rate_limited("POST", r"/repos/acme/shop/issues/5/comments", retry_after=1))
    began = time.monotonic()
    comment_id = client.upsert_comment(5, "preview", "hello")
    assert time.monotonic() - began >= 1.0
    assert [c["id"] for c in github_peer.comments[5]] == [comment_id]
    # A rate-limited request was refused, not performed: sent again without looking first.
    assert len(github_peer.requests("POST", r"/repos/acme/shop/issues/5/comments")) == 2


def test_rate_limit_longer_than_the_budget_gives_up_at_once(client: GitHubClient, github_peer: GitHubApiPeer) -> None:
    github_peer.inject(rate_limited("GET", DEPLOYMENTS, retry_after=3600))
    began = time.monotonic()
    with pytest.raises(GitHubError, match="3600 s, beyond the 10 s budget") as caught:
        client.find_deployments("production")
    assert len(github_peer.requests("GET", DEPLOYMENTS)) == 1, "retried after a wait past the budget"
    assert time.monotonic() - began < 10, "waited up to the budget"
    assert caught.value.status == 403
    assert caught.value.unavailable


def test_ambiguous_500_after_create_makes_exactly_one_deployment(
    client: GitHubClient, github_peer: GitHubApiPeer
) -> None:
    github_peer.inject(Fault("POST", DEPLOYMENTS, status=500, after=True))
    deployment_id = client.create_deployment(
        SHA, "pr-4", transient=True, production=False, description="preview", payload={"pr_number": 4}
    )
    assert list(github_peer.deployments) == [deployment_id]
    assert len(github_peer.requests("POST", DEPLOYMENTS)) == 1


def test_dropped_connection_after_create_makes_exactly_one_deployment(
    client: GitHubClient, github_peer: GitHubApiPeer
) -> None:
    # An earlier run's deployment of the same sha and environment must not be mistaken for ours.
    earlier = client.create_deployment(SHA, "pr-4", transient=True, production=False, description="", payload={})
    github_peer.inject(Fault("POST", DEPLOYMENTS, drop=True, after=True))
    deployment_id = client.create_deployment(SHA, "pr-4", transient=True, production=False, description="", payload={})
    assert deployment_id != earlier
    assert sorted(github_peer.deployments) == [earlier, deployment_id]


def test_500_before_create_is_sent_again_after_looking(client: GitHubClient, github_peer: GitHubApiPeer) -> None:
    github_peer.inject(Fault("POST", DEPLOYMENTS, status=503))
    deployment_id = client.create_deployment(SHA, "pr-4", transient=True, production=False, description="", payload={})
    assert list(github_peer.deployments) == [deployment_id]
    assert len(github_peer.requests("POST", DEPLOYMENTS)) == 2
    assert len(github_peer.requests("GET", DEPLOYMENTS)) == 1


def test_ambiguous_500_after_comment_create_leaves_one_comment(
    client: GitHubClient, github_peer: GitHubApiPeer
) -> None:
    github_peer.inject(Fault("POST", r"/repos/acme/shop/issues/8/comments", status=500, after=True))
    comment_id = client.upsert_comment(8, "preview", "body")
    assert [c["id"] for c in github_peer.comments[8]] == [comment_id]


def test_ambiguous_status_post_is_not_duplicated(client: GitHubClient, github_peer: GitHubApiPeer) -> None:
    deployment_id = client.create_deployment(
        SHA, "production", transient=False, production=True, description="", payload={}
    )
    github_peer.inject(Fault("POST", rf"{DEPLOYMENTS}/{deployment_id}/statuses", status=502, after=True))
    client.set_status(deployment_id, "success", environment_url="https://x", log_url=None, description="live")
    assert [s["state"] for s in github_peer.statuses[deployment_id]] == ["success"]


def test_persistent_5xx_gives_up_within_the_attempts(client: GitHubClient, github_peer: GitHubApiPeer) -> None:
    github_peer.inject(Fault("GET", DEPLOYMENTS, status=500, times=10))
    with pytest.raises(GitHubError, match=r"list deployments .*500.*gave up after 4 attempt") as caught:
        client.find_deployments("production")
    assert caught.value.call == "list deployments"
    assert len(github_peer.requests("GET", DEPLOYMENTS)) == 4


def test_bad_token_is_refused_without_showing_it(github_peer: GitHubApiPeer, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "ghs_WRONGCANARY" + "x" * 20
    gh = GitHubClient(github_peer.url, REPOSITORY, Secret(wrong), retry=FAST)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(GitHubError, match="401 Bad credentials: the github-token was refused") as caught:
        gh.create_deployment(SHA, "production", transient=False, production=True, description="", payload={})
    assert caught.value.unavailable
    assert wrong not in str(caught.value)
    assert wrong not in caplog.text
    assert github_peer.deployments == {}


def test_missing_permission_names_the_permission(client: GitHubClient, github_peer: GitHubApiPeer) -> None:
    github_peer.inject(
        Fault(
            "POST",
            r"/repos/acme/shop/issues/9/comments",
            status=403,
            body={"message": "Resource not accessible by integration"},
        )
    )
    with pytest.raises(GitHubError, match=r"Resource not accessible by integration: .*pull-requests: write") as caught:
        client.upsert_comment(9, "preview", "x")
    assert not caught.value.unavailable


def test_next_links_off_the_api_origin_are_not_followed(
    github_peer: GitHubApiPeer, token: str, refused_url: str
) -> None:
    # The same server under another name: a Link to it must not receive the token.
    gh = GitHubClient(github_peer.url.replace("127.0.0.1", "localhost"), REPOSITORY, Secret(token), retry=FAST)
    for i in range(101):
        github_peer.add_comment(1, f"c{i}")
    assert gh._find_comment(1, "nothing", retry=True) is None
    assert len(github_peer.requests("GET", r"/repos/acme/shop/issues/1/comments")) == 1


def test_from_env_needs_a_token_and_a_repository(token: str) -> None:
    lines = Lines()
    secret = Secret(token)
    assert GitHubClient.from_env({"GITHUB_REPOSITORY": REPOSITORY}, None, log_to=lines) is None
    assert GitHubClient.from_env({}, secret, log_to=lines) is None
    assert lines.lines == [
        ("info", "GitHub: no github-token input; Deployments and PR comments are skipped"),
        ("info", "GitHub: GITHUB_REPOSITORY is not set to owner/name; Deployments and PR comments are skipped"),
    ]
    built = GitHubClient.from_env({"GITHUB_REPOSITORY": REPOSITORY}, secret)
    assert built is not None and built.api_url == "https://api.github.com" and built.repository == REPOSITORY
    ghes = GitHubClient.from_env(
        {"GITHUB_REPOSITORY": REPOSITORY, "GITHUB_API_URL": "https://ghe.example/api/v3/"}, secret
    )
    assert ghes is not None and ghes.api_url == "https://ghe.example/api/v3"


def test_retry_budget_bounds_a_down_github(refused_url: str, token: str) -> None:
    # Unlimited retries: only the budget can end the call, so its returning at all is the proof.
    policy = RetryPolicy(retries=None, budget_seconds=0.3, initial_wait=0.1, max_wait=0.1)
    gh = GitHubClient(refused_url, REPOSITORY, Secret(token), retry=policy)
    began = time.monotonic()
    with pytest.raises(GitHubError, match=r"no answer from 127\.0\.0\.1") as caught:
        gh.find_deployments("production")
    assert time.monotonic() - began >= 0.2, "it retried until the budget ran out"
    assert caught.value.unavailable
