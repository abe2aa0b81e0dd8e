"""Transport faults injected with `responses` into every requests-based client on the one retry loop.

Exact sequences (429 with Retry-After as seconds or an HTTP-date, connection resets, 5xx) and the
exact waits each client then sleeps. The behaviour against real peers is tested beside each client
(tests/github, tests/hardening, tests/platforms); the Kubernetes client speaks urllib3, which
`responses` cannot reach, so its faults are injected by the emulator (tests/platforms/kubernetes).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests
import responses

from orchestrator.contract import NotificationsConfig
from orchestrator.errors import DeployError
from orchestrator.github import GitHubClient, GitHubError
from orchestrator.hardening.agentbench import AgentbenchClient, RetryableDeliveryError
from orchestrator.notify import Notifier
from orchestrator.platforms.digitalocean.api import AppsApi, RetryPolicy
from orchestrator.redaction import Secret
from tests.hardening.samples import result

GITHUB = "https://github.invalid"
DEPLOYMENTS = f"{GITHUB}/repos/acme/shop/deployments"
HOOK = "https://hooks.invalid/services/T0/B0/secret-path"
AGENTBENCH = "https://agentbench.invalid"
DIGITALOCEAN = "https://do.invalid"
RESET = requests.exceptions.ConnectionError("Connection reset by peer")


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def in_seconds(seconds: int) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


class BusyUntil:
    """A 429 whose Retry-After date is stamped when the request arrives, as a server stamps it.

    The wait a client then sleeps is the date less the moment it read the answer, which lies
    between the stamp and the end of the call: `window()` is that range, so a stall between the
    two (a loaded machine, a long garbage collection in a big test session) widens it instead of
    failing a test that is about reading the date, not about speed.
    """

    def __init__(self, seconds: int, body: Any = None) -> None:
        self.seconds = seconds
        self.body = body
        self.stamped: datetime | None = None
        self.date: datetime | None = None

    def __call__(self, _request: Any) -> tuple[int, dict[str, str], str]:
        self.stamped = datetime.now(UTC)
        header = in_seconds(self.seconds)
        self.date = datetime.strptime(header, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
        return 429, {"Retry-After": header}, json.dumps(self.body) if self.body is not None else ""

    def window(self, answered: datetime) -> tuple[float, float]:
        assert self.stamped is not None and self.date is not None, "the 429 was never sent"
        return max(0.0, (self.date - answered).total_seconds()), (self.date - self.stamped).total_seconds()

    def assert_waited(self, waited: float, answered: datetime) -> None:
        earliest, latest = self.window(answered)
        assert earliest - 0.01 <= waited <= latest + 0.01, (waited, earliest, latest)
        assert latest > self.seconds - 1.01, "the date names whole seconds: at most one is lost"


def sent(mocked: responses.RequestsMock, method: str) -> int:
    return sum(1 for call in mocked.calls if call.request.method == method)


# --- GitHub ---------------------------------------------------------------------------------------


def github(slept: list[float]) -> GitHubClient:
    return GitHubClient(GITHUB, "acme/shop", Secret("ghs_fault_token"), sleep=slept.append)


def create(client: GitHubClient) -> int:
    return client.create_deployment(
        "a" * 40, "production", transient=False, production=True, description="", payload={}
    )


def test_github_waits_out_a_429_retry_after_date_then_a_5xx_backoff(mocked: responses.RequestsMock) -> None:
    busy = BusyUntil(3, {"message": "slow down"})
    mocked.add_callback(responses.GET, DEPLOYMENTS, callback=busy)
    mocked.get(DEPLOYMENTS, status=502, json={"message": "bad gateway"})
    mocked.get(DEPLOYMENTS, json=[{"id": 11}, {"id": 12}])
    slept: list[float] = []
    assert github(slept).find_deployments("production") == [11, 12]
    assert len(slept) == 2, slept
    busy.assert_waited(slept[0], datetime.now(UTC))
    assert slept[1] == 1.0, "the second retry's backoff: 0.5 s doubled"


def test_github_secondary_rate_limit_403_waits_for_retry_after_seconds(mocked: responses.RequestsMock) -> None:
    mocked.get(DEPLOYMENTS, status=403, headers={"Retry-After": "7"}, json={"message": "secondary rate limit"})
    mocked.get(DEPLOYMENTS, json=[])
    slept: list[float] = []
    assert github(slept).find_deployments("production") == []
    assert slept == [7.0]


def test_github_looks_after_a_reset_and_a_502_before_creating_once(mocked: responses.RequestsMock) -> None:
    posted: list[dict[str, Any]] = []

    def post(request: Any) -> tuple[int, dict[str, str], str]:
        posted.append(json.loads(request.body))
        if len(posted) == 1:
            raise RESET
        if len(posted) == 2:
            return 502, {}, json.dumps({"message": "bad gateway"})
        return 201, {}, json.dumps({"id": 77})

    def listing(_request: Any) -> tuple[int, dict[str, str], str]:
        # The 502 one went through: GitHub lists it, tagged with the nonce of that request.
        found = [{"id": 76, "payload": posted[-1]["payload"]}] if len(posted) == 2 else []
        return 200, {}, json.dumps(found)

    mocked.add_callback(responses.POST, DEPLOYMENTS, callback=post)
    mocked.add_callback(responses.GET, DEPLOYMENTS, callback=listing)
    slept: list[float] = []
    assert create(github(slept)) == 76
    assert sent(mocked, "POST") == 2 and sent(mocked, "GET") == 2
    assert slept == [0.5, 1.0]


def test_github_gives_up_at_once_when_retry_after_exceeds_the_budget(mocked: responses.RequestsMock) -> None:
    mocked.get(DEPLOYMENTS, status=429, headers={"Retry-After": in_seconds(3600)}, json={"message": "rate limit"})
    slept: list[float] = []
    with pytest.raises(GitHubError, match=r"gave up after 1 attempt\(s\) \(GitHub asked to wait 3\d{3} s") as caught:
        github(slept).find_deployments("production")
    assert caught.value.unavailable and caught.value.status == 429
    assert slept == []


# --- the team webhook -----------------------------------------------------------------------------


def notifier(slept: list[float], budget: float = 8.0) -> Notifier:
    config = NotificationsConfig(webhook_url_env_var="HOOK", timeout_seconds=1.0)
    return Notifier(config, {"HOOK": HOOK}, budget_seconds=budget, sleep=slept.append)


def test_webhook_retries_a_503_a_reset_and_a_429_date_then_sends(mocked: responses.RequestsMock) -> None:
    mocked.post(HOOK, status=503)
    mocked.post(HOOK, body=RESET)
    busy = BusyUntil(5)
    mocked.add_callback(responses.POST, HOOK, callback=busy)
    mocked.post(HOOK, body="ok")
    slept: list[float] = []
    assert notifier(slept).announce(result("failed"))
    assert sent(mocked, "POST") == 4
    assert 0.3 <= slept[0] <= 0.4 and 0.6 <= slept[1] <= 0.7, "backoff 0.3 s doubling, jitter up to 0.1 s"
    busy.assert_waited(slept[2], datetime.now(UTC))


def test_webhook_gives_up_when_retry_after_outlasts_the_budget(mocked: responses.RequestsMock) -> None:
    mocked.post(HOOK, status=429, headers={"Retry-After": "120"})
    slept: list[float] = []
    assert not notifier(slept, budget=8.0).announce(result("failed"))
    assert slept == [] and sent(mocked, "POST") == 1


def test_webhook_does_not_retry_a_refusal(mocked: responses.RequestsMock) -> None:
    mocked.post(HOOK, status=404)
    slept: list[float] = []
    assert not notifier(slept).announce(result("failed"))
    assert slept == []


# --- agentbench -----------------------------------------------------------------------------------


def agentbench(slept: list[float]) -> AgentbenchClient:
    return AgentbenchClient(AGENTBENCH, Secret("ab-fault-token"), sleep=slept.append)


def test_agentbench_waits_a_retry_after_date_then_backs_off_a_502_a_reset(mocked: responses.RequestsMock) -> None:
    endpoint = f"{AGENTBENCH}/api/dpo-pairs"
    busy = BusyUntil(4)
    mocked.add_callback(responses.POST, endpoint, callback=busy)
    mocked.post(endpoint, status=502)
    mocked.post(endpoint, body=RESET)
    mocked.post(endpoint, status=201, json={"submission_id": "s-1"})
    slept: list[float] = []
    deadline = time.monotonic() + 60
    assert agentbench(slept).submit_with_retry({"pair": 1}, "key-1", deadline=deadline) == "s-1"
    keys = {call.request.headers["Idempotency-Key"] for call in mocked.calls}
    assert keys == {"key-1"}, "every re-send carries the same key"
    busy.assert_waited(slept[0], datetime.now(UTC))
    assert 0.4 <= slept[1] <= 0.5 and 0.8 <= slept[2] <= 0.9, "backoff 0.2 s doubling, jitter up to 0.1 s"


def test_agentbench_raises_the_last_retryable_error_at_the_deadline(mocked: responses.RequestsMock) -> None:
    endpoint = f"{AGENTBENCH}/api/dpo-pairs"
    mocked.post(endpoint, status=503, headers={"Retry-After": "30"})
    slept: list[float] = []
    deadline = time.monotonic() + 5
    with pytest.raises(RetryableDeliveryError, match="answered 503") as caught:
        agentbench(slept).submit_with_retry({"pair": 1}, "key-2", deadline=deadline)
    assert caught.value.status == 503 and caught.value.retry_after == 30.0
    assert slept == []


# --- DigitalOcean (pydo over requests) ------------------------------------------------------------


def apps(slept: list[float]) -> AppsApi:
    policy = RetryPolicy(initial_wait=1.0, max_wait=10.0)
    return AppsApi(Secret("dop_v1_fault"), endpoint=DIGITALOCEAN, verify=True, policy=policy, sleep=slept.append)


def test_digitalocean_honours_a_retry_after_date_then_backs_off_a_503_and_a_reset(
    mocked: responses.RequestsMock,
) -> None:
    app = f"{DIGITALOCEAN}/v2/apps/app-1"
    busy = BusyUntil(3, {"id": "too_many", "message": "slow"})
    mocked.add_callback(responses.GET, app, callback=busy)
    mocked.get(app, status=503, json={"id": "unavailable", "message": "try later"})
    mocked.get(app, body=RESET)
    mocked.get(app, json={"app": {"id": "app-1"}})
    slept: list[float] = []
    api = apps(slept)
    assert api.read("get app", api.apps.get, "app-1") == {"app": {"id": "app-1"}}
    busy.assert_waited(slept[0], datetime.now(UTC))
    assert slept[1:] == [2.0, 4.0]


def test_digitalocean_refuses_a_retry_after_beyond_its_cap(mocked: responses.RequestsMock) -> None:
    app = f"{DIGITALOCEAN}/v2/apps/app-1"
    mocked.get(app, status=429, headers={"Retry-After": in_seconds(600)}, json={"id": "too_many", "message": "slow"})
    slept: list[float] = []
    api = apps(slept)
    with pytest.raises(DeployError, match=r"rate limited by DigitalOcean .* more than the 60 s we wait"):
        api.read("get app", api.apps.get, "app-1")
    assert slept == []
