"""Three SSH hosts behind a front haproxy, and a workspace whose config deploys the demo app to them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.config import parse_config
from orchestrator.contract import DeployConfig
from orchestrator.health.release_checks import ReleaseChecks
from orchestrator.health.verdict import Checks
from orchestrator.platforms import registry
from orchestrator.platforms.hosts.platform import HostsPlatform
from orchestrator.platforms.registry import PRODUCTION, PlatformContext
from orchestrator.runlog import RunLog
from orchestrator.strategies import execute, plan_rollout
from tests.peers.postgres import free_port
from tests.peers.ssh_hosts import Fleet, Front
from tests.platforms.hosts.workspace import hosts_document, hosts_env


@dataclass
class Site:
    """The fleet, its front, the workspace, and every platform made (closed at the end)."""

    fleet: Fleet
    front: Front
    workspace: Path
    port: int
    document: dict[str, Any]
    env: dict[str, str]
    made: list[HostsPlatform] = field(default_factory=list)

    def config(self, **deployment: Any) -> DeployConfig:
        document = json.loads(json.dumps(self.document))
        hosts = deployment.pop("hosts", {})
        document["deployment_config"].update(deployment)
        document["deployment_config"]["hosts"].update(hosts)
        return parse_config(document, self.workspace)

    def platform(self, config: DeployConfig | None = None, env: dict[str, str] | None = None) -> HostsPlatform:
        context = PlatformContext(workspace=str(self.workspace), env=env or self.env)
        made = registry.descriptor("hosts").create(config or self.config(), context, PRODUCTION)
        assert isinstance(made, HostsPlatform)
        self.made.append(made)
        return made

    def deploy(
        self,
        platform: HostsPlatform,
        version: str,
        config: DeployConfig | None = None,
        checks: Checks | None = None,
        image: str | None = None,
    ) -> None:
        config = config or self.config()
        live = platform.live()
        plan = plan_rollout(config, platform=platform, old=live.version if live else None, new=version, image=image)
        execute(plan, platform, checks or ReleaseChecks(config, dsn=None), RunLog(), sleep=lambda _s: None)

    def on_host(self, index: int) -> str:
        """The release the host's own proxy answers with (bypassing the front)."""
        host = self.fleet.hosts[index]
        return str(requests.get(f"http://{host.address}:{self.port}/version", timeout=10).json()["version"])

    def through_front(self, count: int = 9) -> set[str]:
        return {str(requests.get(f"{self.front.url}/version", timeout=10).json()["version"]) for _ in range(count)}


@pytest.fixture
def site(ssh_fleet: Fleet, tmp_path: Path) -> Iterator[Site]:
    if Path("/proc/1/comm").read_text().strip() == "systemd":
        # The namespace hosts share this machine's init: a unit would run the supervisor outside them.
        pytest.fail("the SSH host tests need a machine whose PID 1 is not systemd (a container, as CI's is)")
    port = free_port()
    front = ssh_fleet.start_front(port)
    document = hosts_document(tmp_path, ssh_fleet, port, front.url)
    made = Site(ssh_fleet, front, tmp_path, port, document, hosts_env(ssh_fleet, tmp_path))
    yield made
    for platform in made.made:
        platform.close()


@pytest.fixture
def deployed(site: Site) -> Site:
    """`site` with v1 live on every host."""
    site.deploy(site.platform(), "v1")
    return site


Cut = Callable[[], None]
