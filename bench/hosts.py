"""Blue/green across three SSH hosts behind a front haproxy, beside the same flip done by haproxy alone.

    python bench/hosts.py [--switches 30] [--interval 0.2] [--connections 20]

Three hosts are network namespaces running Debian's sshd (tests/peers/ssh_hosts.py); the `hosts`
platform signs in over SSH, installs the orchestrator there and runs the demo app (from the
release's files, on the host's own Python) behind each host's local supervisor and proxy. A front
haproxy on 127.0.0.1 balances the hosts.

- deploy_s: one whole deploy of a new release as a run does it (sign in to every host, upload and
  check the snapshot, start it, check it on every host and through a tunnel, switch, verify through
  the front), the orchestrator already installed.
- switches: `--switches` blue/green switches `--interval` apart (`HostsPlatform.route`, every host at
  once) while `--connections` keep-alive connections through the front never retry (bench/switch_load);
  failed counts every request that was not a 200. switch_skew_ms is the largest spread between the
  first and the last host's switch over all switches (each host's agent stamps when its proxy switched;
  the namespaces share one clock), with the median beside it.
- rollback_s: `HostsPlatform.rollback` to the previous release on every host.
- peer: Kamal (SSH + kamal-proxy per host) is not installable here (a Ruby gem driving Docker). The
  best available stand-in is the same switch done by the front alone: one haproxy holding both
  releases of every host as servers, flipped in one runtime-API command (no per-host skew by
  construction); the same client load counts its failed requests.
"""

from __future__ import annotations

import argparse
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from switch_load import run_load

from orchestrator.config import parse_config
from orchestrator.health.release_checks import ReleaseChecks
from orchestrator.platforms import registry
from orchestrator.platforms.base import Release
from orchestrator.platforms.hosts.platform import HostsPlatform
from orchestrator.platforms.registry import PRODUCTION, PlatformContext
from orchestrator.runlog import RunLog
from orchestrator.strategies import execute, plan_rollout
from tests.peers.postgres import free_port
from tests.peers.ssh_hosts import Fleet, missing_tools, start_fleet
from tests.platforms.hosts.workspace import hosts_document, hosts_env


def _platform(fleet: Fleet, workspace: Path, document: dict[str, object]) -> HostsPlatform:
    config = parse_config(document, workspace)
    context = PlatformContext(workspace=str(workspace), env=hosts_env(fleet, workspace))
    made = registry.descriptor("hosts").create(config, context, PRODUCTION)
    assert isinstance(made, HostsPlatform)
    return made


def _deploy(fleet: Fleet, workspace: Path, document: dict[str, object], version: str) -> tuple[HostsPlatform, float]:
    began = time.perf_counter()
    platform = _platform(fleet, workspace, document)
    config = parse_config(document, workspace)
    live = platform.live()
    plan = plan_rollout(config, platform=platform, old=live.version if live else None, new=version, image=None)
    execute(plan, platform, ReleaseChecks(config, dsn=None), RunLog(), sleep=lambda _s: None)
    return platform, time.perf_counter() - began


def _under_load(port: int, connections: int, switches: int, interval: float, switch: object) -> tuple[int, int]:
    """(answers, failed) of the never-retrying client while `switch(i)` runs `switches` times."""
    seconds = switches * interval + 2.0
    process, queue = run_load(port, connections, seconds)
    time.sleep(1.0)  # the client's connections are open and busy before the first switch
    for i in range(switches):
        began = time.monotonic()
        switch(i)  # type: ignore[operator]
        time.sleep(max(0.0, interval - (time.monotonic() - began)))
    result = queue.get(timeout=seconds + 60)
    process.join(30)
    return len(result.records), result.failed


class _HaproxyFlip:
    """The peer: one haproxy holding blue and green of every host, flipped through its runtime API."""

    def __init__(self, fleet: Fleet, app: Path) -> None:
        self.ports = {"blue": free_port(), "green": free_port()}
        for host in fleet.hosts:
            for version, port in self.ports.items():
                serve = f"/usr/bin/python3 app.py --host {host.address} --port {port} --version peer-{version}"
                command = f"cd {shlex.quote(str(app))} && (setsid {serve} > /dev/null 2>&1 < /dev/null &)"
                _ssh(fleet, host.address, command)
        self.port = free_port()
        self.socket = fleet.directory / "peer.sock"
        servers = []
        for host in fleet.hosts:
            for version, port in self.ports.items():
                state = "" if version == "blue" else " disabled"
                servers.append(f"    server {host.name}-{version} {host.address}:{port}{state}")
        config = fleet.directory / "peer.cfg"
        config.write_text(
            f"global\n    stats socket {self.socket} mode 600 level admin\n"
            "defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n"
            f"frontend public\n    bind 127.0.0.1:{self.port}\n    default_backend app\n"
            "backend app\n    balance roundrobin\n" + "\n".join(servers) + "\n"
        )
        self.process = subprocess.Popen(
            ["haproxy", "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for host in fleet.hosts:
            for port in self.ports.values():
                _wait(host.address, port)
        _wait("127.0.0.1", self.port)
        self.hosts = [h.name for h in fleet.hosts]
        self.flip_ms: list[float] = []

    def flip(self, i: int) -> None:
        new, old = ("green", "blue") if i % 2 == 0 else ("blue", "green")
        lines = [f"set server app/{h}-{new} state ready" for h in self.hosts]
        lines += [f"set server app/{h}-{old} state maint" for h in self.hosts]
        began = time.perf_counter()
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.socket))
            s.sendall(("; ".join(lines) + "\n").encode())
            while s.recv(65536):
                pass
        self.flip_ms.append((time.perf_counter() - began) * 1000)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _ssh(fleet: Fleet, address: str, command: str) -> None:
    import io

    import paramiko

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    for line in fleet.known_hosts.splitlines():
        entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        assert entry is not None and entry.key is not None
        client.get_host_keys().add(entry.hostnames[0], entry.key.get_name(), entry.key)
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(fleet.client_key))
    client.connect(address, username="root", pkey=key, look_for_keys=False, allow_agent=False, timeout=30)
    _, out, _ = client.exec_command(command, timeout=60)
    out.channel.recv_exit_status()
    client.close()


def _wait(address: str, port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {address}:{port}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switches", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--connections", type=int, default=20)
    args = parser.parse_args()
    problem = missing_tools()
    if problem:
        print(f"bench/hosts.py: {problem}", file=sys.stderr)
        return 2
    fleet = start_fleet(3)
    workspace = Path(tempfile.mkdtemp(prefix="bench-hosts-"))
    made: list[HostsPlatform] = []
    peer: _HaproxyFlip | None = None
    try:
        app_port = free_port()
        front = fleet.start_front(app_port)
        document = hosts_document(workspace, fleet, app_port, front.url)
        first, install_s = _deploy(fleet, workspace, document, "blue")
        made.append(first)
        platform, deploy_s = _deploy(fleet, workspace, document, "green")
        made.append(platform)
        skews: list[float] = []
        deliveries: list[float] = []

        def switch(i: int) -> None:
            platform.route({"blue" if i % 2 == 0 else "green": 100})
            assert platform.last_switch_skew_ms is not None
            skews.append(platform.last_switch_skew_ms)
            deliveries.append(platform.last_delivery_skew_ms or 0.0)

        front_port = int(front.url.rsplit(":", 1)[1])
        answers, failed = _under_load(front_port, args.connections, args.switches, args.interval, switch)
        platform.route({"green": 100})
        began = time.perf_counter()
        platform.rollback(Release("blue"))
        rollback_s = time.perf_counter() - began

        peer = _HaproxyFlip(fleet, workspace / "app")
        peer_answers, peer_failed = _under_load(peer.port, args.connections, args.switches, args.interval, peer.flip)
    finally:
        for each in made:
            each.close()
        if peer is not None:
            peer.close()
        fleet.close()

    print(f"\n3 hosts behind a front haproxy; {args.switches} blue/green switches {args.interval:g} s apart under")
    print(f"{args.connections} keep-alive connections that never retry (the machine may be shared: figures swing)\n")
    print(f"{'what':<34}{'answers':>9}{'failed':>8}{'skew p50 ms':>13}{'skew max ms':>13}{'switch p50 ms':>15}")
    print(
        f"{'hosts platform (route on 3 hosts)':<34}{answers:>9}{failed:>8}{statistics.median(skews):>13.1f}"
        f"{max(skews):>13.1f}{'-':>15}"
    )
    print(
        f"{'haproxy runtime-API flip (peer)':<34}{peer_answers:>9}{peer_failed:>8}{'0':>13}{'0':>13}"
        f"{statistics.median(peer.flip_ms):>15.2f}"
    )
    print(
        f"of which the fire reaching the hosts: p50 {statistics.median(deliveries):.1f} ms, "
        f"max {max(deliveries):.1f} ms (the rest is each host's own switch)"
    )
    print(f"\nfirst deploy (installing the orchestrator on 3 hosts): {install_s:.2f} s")
    print(f"deploy of a new release, orchestrator installed:       {deploy_s:.2f} s")
    print(f"rollback to the previous release on 3 hosts:           {rollback_s:.2f} s")
    print("peer note: Kamal is not installable here; the haproxy flip (one proxy, so no skew) is the best available")
    print(
        f"hosts: hosts=3 failed={failed} switch_skew_ms={max(skews):.1f} deploy_s={deploy_s:.2f} "
        f"rollback_s={rollback_s:.2f} skew_p50_ms={statistics.median(skews):.1f} peer_failed={peer_failed} "
        f"peer_flip_ms={statistics.median(peer.flip_ms):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
