"""Rollouts across real SSH hosts: blue/green under load, rolling by host, a host lost mid-roll, reconciling it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from orchestrator.contract import DeployConfig
from orchestrator.errors import DeployError
from orchestrator.health.release_checks import ReleaseChecks
from orchestrator.health.verdict import CheckVerdict
from orchestrator.rollback import roll_back
from orchestrator.runlog import RunLog
from orchestrator.strategies import RolloutFailure, plan_rollout
from orchestrator.strategies.steps import Route
from tests.platforms.hosts.conftest import Site

# Real SSH hosts: every case signs in, installs and starts releases on three of them (a minute on a busy machine).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


class _Load:
    """Keep-alive clients hitting the front until stopped; every answer that is not a 200 is a failure."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.failures: list[str] = []
        self.answers = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(url,), daemon=True) for _ in range(clients)]
        for thread in self._threads:
            thread.start()

    def _run(self, url: str) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    answer = session.get(f"{url}/version", timeout=10)
                    if answer.status_code != 200:
                        self.failures.append(f"{answer.status_code}: {answer.text[:200]}")
                except requests.RequestException as exc:
                    self.failures.append(repr(exc))
                self.answers += 1

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


class _Hooked:
    """The real release checks, with `action` run at the first call of `when` ("release" or "live")."""

    def __init__(self, config: DeployConfig, when: str, action: Callable[[], None], *, fail: bool = False) -> None:
        self._real = ReleaseChecks(config, dsn=None)
        self._when, self._action, self._fail = when, action, fail
        self._done = False

    def _fire(self, when: str) -> bool:
        if when == self._when and not self._done:
            self._done = True
            self._action()
            return True
        return False

    def release(self, base_url: str, *, analysis: bool, deadline: float | None = None) -> CheckVerdict:
        self._fire("release")
        return self._real.release(base_url, analysis=analysis, deadline=deadline)

    def live(self, base_url: str) -> CheckVerdict:
        if self._fire("live") and self._fail:
            return CheckVerdict(False, (), "error rate 12% above the 1% threshold")
        return self._real.live(base_url)


def _roll_back(site: Site, config: DeployConfig, failure: RolloutFailure, previous_version: str) -> str | None:
    platform = site.made[-1]
    previous = next(r for r in platform.releases() if r.version == previous_version)
    report = roll_back(
        platform=platform,
        previous=previous,
        failed_version="v2",
        traffic_moved=failure.outcome.traffic_moved,
        reason=str(failure),
        checks=ReleaseChecks(config, dsn=None),
        undo_migrations=list,
        budget_seconds=60,
        log=RunLog(),
    )
    return None if report.error is None else str(report.error)


def test_blue_green_switches_three_hosts_under_load_without_a_failed_request(deployed: Site) -> None:
    platform = deployed.platform()
    load = _Load(deployed.front.url)
    try:
        for version in ("v2", "v3"):
            deployed.deploy(platform, version)
            assert platform.last_switch_skew_ms is not None
    finally:
        load.stop()
    assert load.failures == []
    assert load.answers > 0
    assert [deployed.on_host(i) for i in range(3)] == ["v3", "v3", "v3"]
    assert deployed.through_front() == {"v3"}
    outputs = platform.run_outputs()
    assert outputs is not None
    pid1 = Path("/proc/1/comm").read_text().strip()
    for host in deployed.fleet.hosts:
        assert f"host {host.address}: no systemd (PID 1 is {pid1}, not systemd" in outputs.deploy_logs
    assert "last switch: every host within" in outputs.deploy_logs


def test_a_host_failing_the_switch_puts_every_host_back(deployed: Site) -> None:
    platform = deployed.platform()
    config = deployed.config()
    cut = _Hooked(config, "release", deployed.fleet.hosts[2].cut_off)
    with pytest.raises(RolloutFailure) as failure:
        deployed.deploy(platform, "v2", checks=cut)
    host = deployed.fleet.hosts[2].address
    assert f"host {host} was lost" in str(failure.value)
    assert failure.value.outcome.traffic_moved is False
    assert [deployed.on_host(i) for i in range(2)] == ["v1", "v1"], "the hosts that had switched went back"


def test_rolling_moves_one_host_at_a_time_and_checks_each(deployed: Site) -> None:
    config = deployed.config(strategy="rolling", hosts={"systemd": False})
    platform = deployed.platform(config)
    seen: list[list[str]] = []

    class Watching(_Hooked):
        def live(self, base_url: str) -> CheckVerdict:
            seen.append([deployed.on_host(i) for i in range(3)])
            return super().live(base_url)

    deployed.deploy(platform, "v2", config=config, checks=Watching(config, "never", lambda: None))
    assert seen == [["v2", "v1", "v1"], ["v2", "v2", "v1"], ["v2", "v2", "v2"]]
    outputs = platform.run_outputs()
    assert outputs is not None and outputs.deploy_logs.count("hosts.systemd is off") == 3


def test_rolling_with_a_host_cut_off_stops_puts_moved_hosts_back_and_names_the_lost_one(deployed: Site) -> None:
    config = deployed.config(strategy="rolling")
    platform = deployed.platform(config)
    lost = deployed.fleet.hosts[1]
    with pytest.raises(RolloutFailure) as failure:
        deployed.deploy(platform, "v2", config=config, checks=_Hooked(config, "live", lost.cut_off))
    # Whichever noticed first (the next host's check, or the analysis through the front), the roll stopped.
    assert failure.value.outcome.traffic_moved is True

    error = _roll_back(deployed, config, failure.value, "v1")

    assert error is not None and lost.address in error and "left for the next run to reconcile" in error
    assert [deployed.on_host(i) for i in (0, 2)] == ["v1", "v1"]

    lost.reconnect()
    again = deployed.platform(config)
    live = again.live()
    assert live is not None and live.version == "v1"
    deployed.deploy(again, "v3", config=config)
    assert [deployed.on_host(i) for i in range(3)] == ["v3", "v3", "v3"]


def test_a_host_lost_before_a_rollback_stages_keeps_no_other_host_on_the_failed_release(deployed: Site) -> None:
    # Cut off after the switch: its connection still looks open, so the rollback finds out only when
    # the host fails to stage; the reachable hosts must go back all the same.
    platform = deployed.platform()
    deployed.deploy(platform, "v2")
    lost = deployed.fleet.hosts[1]
    lost.cut_off()
    previous = next(r for r in platform.releases() if r.version == "v1")

    with pytest.raises(DeployError) as refused:
        platform.rollback(previous)

    assert lost.address in str(refused.value) and "left for the next run to reconcile" in str(refused.value)
    assert [deployed.on_host(i) for i in (0, 2)] == ["v1", "v1"]


def test_a_moved_host_lost_before_it_could_go_back_is_reconciled_by_the_next_run(
    deployed: Site, caplog: pytest.LogCaptureFixture
) -> None:
    config = deployed.config(strategy="rolling")
    platform = deployed.platform(config)
    moved = deployed.fleet.hosts[0]
    with pytest.raises(RolloutFailure) as failure:
        deployed.deploy(platform, "v2", config=config, checks=_Hooked(config, "live", moved.cut_off, fail=True))

    error = _roll_back(deployed, config, failure.value, "v1")

    assert error is not None and moved.address in error
    assert [deployed.on_host(i) for i in (1, 2)] == ["v1", "v1"]
    moved.reconnect()
    assert deployed.on_host(0) == "v2", "the lost host still routes the release it was moved to"

    next_run = deployed.platform(config)
    live = next_run.live()
    assert live is not None and live.version == "v1", "what the host set last agreed on"
    assert deployed.on_host(0) == "v2", "reading touches nothing"

    caplog.set_level(logging.WARNING)
    deployed.deploy(next_run, "v3", config=config)

    assert f"host {moved.address} reconciled: it routed v2, now v1 as the others" in caplog.text
    assert [deployed.on_host(i) for i in range(3)] == ["v3", "v3", "v3"]


def test_rollback_returns_every_host_to_the_old_release(deployed: Site) -> None:
    platform = deployed.platform()
    deployed.deploy(platform, "v2")
    old = next(r for r in platform.releases() if r.version == "v1")
    platform.rollback(old)
    assert [deployed.on_host(i) for i in range(3)] == ["v1", "v1", "v1"]
    assert platform.last_switch_skew_ms is not None


def test_canary_moves_the_labelled_canary_hosts_first_then_the_rest(deployed: Site) -> None:
    hosts = [dict(h) for h in deployed.document["deployment_config"]["hosts"]["hosts"]]
    hosts[2]["labels"] = {"role": "canary"}
    config = deployed.config(
        strategy="canary",
        canary={"steps": [{"weight": 10}, {"weight": 100}]},
        hosts={"hosts": hosts, "canary_labels": {"role": "canary"}},
    )
    platform = deployed.platform(config)
    plan = plan_rollout(config, platform=platform, old="v1", new="v2", image=None)
    first = next(step for step in plan.steps if isinstance(step, Route))
    assert (first.weights, first.effective) == ((("v1", 90), ("v2", 10)), (("v1", 67), ("v2", 33))), "one host of 3"
    seen: list[list[str]] = []

    class Watching(_Hooked):
        def live(self, base_url: str) -> CheckVerdict:
            seen.append([deployed.on_host(i) for i in range(3)])
            return super().live(base_url)

    deployed.deploy(platform, "v2", config=config, checks=Watching(config, "never", lambda: None))
    assert seen == [["v1", "v1", "v2"], ["v2", "v2", "v2"]]


def test_canary_split_by_weight_has_every_host_split_its_own_traffic(deployed: Site) -> None:
    config = deployed.config(
        strategy="canary", canary={"steps": [{"weight": 50}, {"weight": 100}]}, hosts={"split": "weight"}
    )
    platform = deployed.platform(config)
    seen: list[list[set[str]]] = []

    def answers(index: int) -> set[str]:
        return {deployed.on_host(index) for _ in range(30)}

    class Watching(_Hooked):
        def live(self, base_url: str) -> CheckVerdict:
            seen.append([answers(i) for i in range(3)])
            return super().live(base_url)

    deployed.deploy(platform, "v2", config=config, checks=Watching(config, "never", lambda: None))
    assert seen == [[{"v1", "v2"}] * 3, [{"v2"}] * 3]
