"""Blue/green switching under keep-alive load: both our data planes beside haproxy and nginx, in one run.

    python bench/switch.py [--switches 60] [--interval 0.2] [--seconds 2] [--rounds 5] [--steady-only]

The releases are static nginx servers (one worker each, answering their version), so what is measured
is the front, not the app. Fronts, all reaching the same kind of backends:
- ours: `local.proxy: python` through LocalPlatform (the switch is `LocalPlatform.route`, the real path:
  CLI -> supervisor -> proxy process);
- hap: `local.proxy: haproxy` through LocalPlatform (the supervisor drives haproxy's runtime API);
- haproxy: haproxy driven by hand through its runtime API (`set server ... state ready|drain`), best in class;
- nginx: upstream rewritten and `nginx -s reload`, common practice;
- floor (steady load only): `bench/minimal_proxy.py`, the least a correct re-framing proxy in Python does
  per request, on the same event loop and parser as ours: the ceiling for a Python proxy on this machine;
- ours/var and nginx/var (steady load only): ours and nginx again, every request with a target of its own
  (`bench/varied_requests.lua`): ours remembers the heads it has read, and one request repeated flatters it.
For each switching front, at 20 and at 200 keep-alive connections, a client that never retries (see
`switch_load`) counts every failed request while `--switches` switches happen `--interval` apart; the
switch samples (one per connection and switch, attributed by completion time, timed from the moment
the switch is requested, so they include the route call; see `switch_load` for what they measure)
give p50/p99. Then wrk, without switching, in interleaved rounds, gives each front's req/s and /proc
the CPU time per request of its data-plane processes (our proxy process, haproxy's workers, nginx's
worker). A ratio is the median over rounds of the two fronts' req/s in the same round: on a shared
machine, load swings from one second to the next, and CPU per request is the steadier comparison.
Everything stays on 127.0.0.1. `--steady-only` skips the switching runs and prints the wrk table alone
(and a `steady:` line in place of `switch:`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from switch_load import WRK, Wrk, children, cpu_seconds, percentile, run_load, switch_samples

from orchestrator.contract import LocalConfig
from orchestrator.platforms.local import LocalPlatform, supervisor_stop
from orchestrator.platforms.local.control import ControlClient
from orchestrator.platforms.local.state import StatePaths

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
VERSIONS = (b"blue", b"green")
COUNTS = (20, 200)

RELEASE = '''import os, sys
port, version, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
conf = f"{prefix}/release-{port}.conf"
with open(conf, "w") as f:
    f.write(f"""worker_processes 1; daemon off; pid {prefix}/release-{port}.pid; error_log {prefix}/release-{port}.err;
events {{ worker_connections 8192; }}
http {{ access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "{version}\\\\n"; }} }} }}
""")
os.execv("NGINX", ["nginx", "-p", prefix, "-c", conf])
'''.replace("NGINX", NGINX)

NGINX_FRONT = """worker_processes 1;
pid {prefix}/front.pid;
error_log {prefix}/front.err warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  include {prefix}/upstream.conf;
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
"""

HAPROXY_FRONT = """global
  maxconn 4000
  stats socket {prefix}/admin.sock mode 600 level admin
defaults
  mode http
  option http-keep-alive
  http-reuse safe
  timeout connect 5s
  timeout client 75s
  timeout server 300s
frontend public
  bind 127.0.0.1:{port}
  default_backend releases
backend releases
  balance roundrobin
  server blue 127.0.0.1:{blue} weight 256
  server green 127.0.0.1:{green} weight 256
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Ours:
    """A LocalPlatform (python or haproxy data plane) on two static releases."""

    def __init__(self, work: Path, kind: str) -> None:
        self.work = work / kind
        self.work.mkdir()
        (self.work / "release.py").write_text(RELEASE)
        command = (sys.executable, str(self.work / "release.py"), "{port}", "{version}", str(self.work))
        self.config = LocalConfig(
            command=command, listen=f"127.0.0.1:{free_port()}", state_dir=Path("state"), proxy=kind
        )
        self.platform = LocalPlatform(self.config, self.work)
        self.ports = {v: int((self.platform.start(v.decode(), None).url or "").rsplit(":", 1)[1]) for v in VERSIONS}
        self.platform.route({"blue": 100})
        self.port = int(self.config.listen.rsplit(":", 1)[1])
        self.route_ms: list[float] = []

    def switch(self, version: bytes) -> None:
        began = time.monotonic()
        self.platform.route({version.decode(): 100})
        self.route_ms.append((time.monotonic() - began) * 1000)

    def data_plane_pids(self) -> list[int]:
        pid = int(ControlClient(StatePaths(self.work / "state")).call("status")["proxy"]["pid"])
        return children(pid) if self.config.proxy == "haproxy" else [pid]

    def close(self) -> None:
        supervisor_stop(self.config, self.work)


class HaproxyByHand:
    def __init__(self, work: Path, ports: dict[bytes, int]) -> None:
        self.prefix = work / "haproxy-by-hand"
        self.prefix.mkdir()
        self.port = free_port()
        conf = self.prefix / "haproxy.cfg"
        conf.write_text(
            HAPROXY_FRONT.format(prefix=self.prefix, port=self.port, blue=ports[b"blue"], green=ports[b"green"])
        )
        self.proc = subprocess.Popen(
            [HAPROXY, "-W", "-f", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)
        self.switch(b"blue")

    def _cli(self, command: str) -> None:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.prefix / "admin.sock"))
            sock.sendall(command.encode() + b"\n")
            while sock.recv(65536):
                pass

    def switch(self, version: bytes) -> None:
        new, old = version.decode(), ({"blue", "green"} - {version.decode()}).pop()
        self._cli(f"set server releases/{new} state ready; set server releases/{old} state drain")

    def data_plane_pids(self) -> list[int]:
        return children(self.proc.pid)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.proc.poll() is None:
            self.proc.kill()


class NginxReload:
    def __init__(self, work: Path, ports: dict[bytes, int]) -> None:
        self.prefix = work / "nginx-reload"
        self.prefix.mkdir()
        self.port = free_port()
        self.ports = ports
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(NGINX_FRONT.format(prefix=self.prefix, port=self.port))
        self._upstream(b"blue")
        self._nginx()
        wait_port(self.port)

    def _nginx(self, *args: str) -> None:
        subprocess.run([NGINX, "-p", str(self.prefix), "-c", str(self.conf), *args], check=True, capture_output=True)

    def _upstream(self, version: bytes) -> None:
        text = f"upstream app {{ server 127.0.0.1:{self.ports[version]}; keepalive 512; }}\n"
        (self.prefix / "upstream.conf").write_text(text)

    def switch(self, version: bytes) -> None:
        self._upstream(version)
        self._nginx("-s", "reload")

    def data_plane_pids(self) -> list[int]:
        return children(int((self.prefix / "front.pid").read_text()))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            pid = int((self.prefix / "front.pid").read_text())
            self._nginx("-s", "quit")
            deadline = time.monotonic() + 5
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)


class Floor:
    """`minimal_proxy.py` in front of the blue release (it cannot switch: steady load only)."""

    def __init__(self, ports: dict[bytes, int]) -> None:
        self.port = free_port()
        script = Path(__file__).resolve().parent / "minimal_proxy.py"
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.port), str(ports[b"blue"])])
        wait_port(self.port)

    def data_plane_pids(self) -> list[int]:
        return [self.proc.pid]

    def close(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.proc.poll() is None:
            self.proc.kill()


@dataclass(frozen=True)
class Switching:
    failed: int
    answers: int
    samples: list[float]
    """When each connection's traffic moved (see `switch_load`)."""
    answered: list[float]
    """When it got its first answer from the new release."""
    effect: list[float]
    """Per switch: when it had taken effect (see `switch_load.SwitchSamples`)."""
    unmoved: int

    @property
    def p50(self) -> float:
        return percentile(self.samples, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 99)

    @property
    def answered_p99(self) -> float:
        return percentile(self.answered, 99)

    @property
    def effect_p99(self) -> float:
        return percentile(self.effect, 99)


def run_switching(
    port: int, switch: Callable[[bytes], None], connections: int, count: int, interval: float
) -> Switching:
    proc, queue = run_load(port, connections, 0.6 + count * interval + 0.4)
    time.sleep(0.6)
    switches = []
    current = b"blue"
    for _ in range(count):
        current = VERSIONS[1] if current == VERSIONS[0] else VERSIONS[0]
        at = time.monotonic()
        switch(current)
        switches.append((at, current))
        time.sleep(max(0.0, at + interval - time.monotonic()))
    result = queue.get(timeout=120)
    proc.join(timeout=10)
    if current != b"blue":
        switch(b"blue")  # end on blue, as the next run expects
    samples = switch_samples(result.records, switches)
    return Switching(
        result.failed, len(result.records), samples.moved, samples.answered, samples.effect, samples.unmoved
    )


def throughput(
    port: int, connections: int, seconds: float, pids: list[int], *, varied: bool = False
) -> tuple[Wrk, float]:
    Wrk.run(port, connections, 1)  # warm the pools
    before = sum(cpu_seconds(p) for p in pids)
    stats = Wrk.run(port, connections, seconds, varied=varied)
    used = sum(cpu_seconds(p) for p in pids) - before
    return stats, (used * 1e6 / stats.requests if stats.requests and pids else float("nan"))


FRONTS = ("ours", "hap", "haproxy", "nginx")
"""The switching fronts."""
VARIED = "/var"
"""A row with every request's head distinct (`switch_load.VARIED_SCRIPT`): ours remembers heads it has read,
and wrk repeating one request would flatter it; nginx beside it is the ratio's peer."""
STEADY = (*FRONTS, "floor", "ours" + VARIED, "nginx" + VARIED)


@dataclass(frozen=True)
class Steady:
    """wrk rounds (no switching) of every front, interleaved: round i of each ran side by side in time."""

    rounds: dict[tuple[str, int], list[tuple[Wrk, float]]]

    def rps(self, name: str, conns: int) -> float:
        return statistics.median(run.rps for run, _ in self.rounds[(name, conns)])

    def cpu_us(self, name: str, conns: int) -> float:
        return statistics.median(cpu for _, cpu in self.rounds[(name, conns)])

    def failed(self, name: str, conns: int) -> int:
        return sum(run.failed for run, _ in self.rounds[(name, conns)])

    def ratio(self, name: str, peer: str, conns: int) -> float:
        """The median over rounds of name's req/s over peer's in the same round (a loaded machine's
        swings hit both alike, where a ratio of medians would mix different moments)."""
        pairs = zip(self.rounds[(name, conns)], self.rounds[(peer, conns)], strict=True)
        return statistics.median(ours.rps / theirs.rps for (ours, _), (theirs, _) in pairs if theirs.rps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switches", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--seconds", type=float, default=2.0, help="wrk duration per front, connection count and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved wrk rounds (medians are reported)")
    parser.add_argument("--steady-only", action="store_true", help="skip the switching runs: wrk rounds only")
    args = parser.parse_args()
    for tool in (NGINX, WRK, HAPROXY):
        if not Path(tool).exists():
            print(f"{tool} is missing: apt-get install nginx-light wrk haproxy", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="bench-switch-"))
    fronts: dict[str, object] = {}
    try:
        ours = fronts["ours"] = Ours(work, "python")
        fronts["hap"] = Ours(work, "haproxy")
        fronts["haproxy"] = HaproxyByHand(work, ours.ports)
        fronts["nginx"] = NginxReload(work, ours.ports)
        fronts["floor"] = Floor(ours.ports)
        switching: dict[tuple[str, int], Switching] = {}
        route_ms: dict[tuple[str, int], list[float]] = {}
        for connections in COUNTS if not args.steady_only else ():
            for name in FRONTS:
                front = fronts[name]
                if isinstance(front, Ours):
                    front.route_ms.clear()
                run = run_switching(front.port, front.switch, connections, args.switches, args.interval)  # type: ignore[attr-defined]
                switching[(name, connections)] = run
                if isinstance(front, Ours):
                    route_ms[(name, connections)] = list(front.route_ms)
        # Interleaved rounds, medians: on a shared machine one run each swings with whatever else runs.
        rounds: dict[tuple[str, int], list[tuple[Wrk, float]]] = {}
        direct = ours.ports[b"blue"]
        for index in range(args.rounds):
            # Each round starts with another front: in a fixed order, a machine's load trend favours one.
            order = STEADY[index % len(STEADY) :] + STEADY[: index % len(STEADY)]
            for connections in COUNTS:
                rounds.setdefault(("backend", connections), []).append(
                    throughput(direct, connections, args.seconds, [])
                )
                for name in order:
                    front = fronts[name.removesuffix(VARIED)]
                    pids = front.data_plane_pids()  # type: ignore[attr-defined]
                    measured = throughput(front.port, connections, args.seconds, pids, varied=name.endswith(VARIED))  # type: ignore[attr-defined]
                    rounds.setdefault((name, connections), []).append(measured)
        steady = Steady(rounds)
    finally:
        for front in fronts.values():
            with contextlib.suppress(Exception):
                front.close()  # type: ignore[attr-defined]
        shutil.rmtree(work, ignore_errors=True)
    return report(args, switching, route_ms, steady)


def report(
    args: argparse.Namespace,
    switching: dict[tuple[str, int], Switching],
    route_ms: dict[tuple[str, int], list[float]],
    steady: Steady,
) -> int:
    if switching:
        print_switching(args, switching, route_ms)
    print(f"\nsteady load with wrk (no switching), medians of {args.rounds} interleaved rounds of {args.seconds:g} s")
    print(f"{'front':<9}{'conns':>6}{'req/s':>10}{'failed':>8}{'CPU us/req':>12}{'/nginx':>8}{'/haproxy':>10}")
    for name in ("backend", *STEADY):
        for conns in COUNTS:
            if name.endswith(VARIED):  # beside nginx under the same varied requests; haproxy had none
                ratios = f"{steady.ratio(name, 'nginx' + VARIED, conns):>8.2f}{'-':>10}"
            else:
                ratios = f"{steady.ratio(name, 'nginx', conns):>8.2f}{steady.ratio(name, 'haproxy', conns):>10.2f}"
            rps, failed, cpu = steady.rps(name, conns), steady.failed(name, conns), steady.cpu_us(name, conns)
            print(f"{name:<9}{conns:>6}{rps:>10.0f}{failed:>8}{cpu:>12.1f}{ratios}")
    floor = (
        f"floor_rps={steady.rps('floor', 20):.0f} floor_rps_ratio_nginx={steady.ratio('floor', 'nginx', 20):.2f} "
        f"floor_cpu_us={steady.cpu_us('floor', 20):.1f} "
        f"varied_rps={steady.rps('ours' + VARIED, 20):.0f} "
        f"varied_rps_ratio_nginx={steady.ratio('ours' + VARIED, 'nginx' + VARIED, 20):.2f} "
        f"varied_cpu_us={steady.cpu_us('ours' + VARIED, 20):.1f}"
    )
    if not switching:
        print(
            f"\nsteady: rps={steady.rps('ours', 20):.0f} rps_ratio_nginx={steady.ratio('ours', 'nginx', 20):.2f} "
            f"cpu_us={steady.cpu_us('ours', 20):.1f} hap_rps_ratio_haproxy={steady.ratio('hap', 'haproxy', 20):.2f} "
            f"{floor}"
        )
        return 0

    def figures(name: str, prefix: str) -> str:
        calls = route_ms[(name, 200)]
        return (
            f"{prefix}failed={switching[(name, 20)].failed} {prefix}failed_200={switching[(name, 200)].failed} "
            f"{prefix}p99_ms={switching[(name, 20)].p99:.2f} {prefix}p99_200_ms={switching[(name, 200)].p99:.2f} "
            f"{prefix}rps={steady.rps(name, 20):.0f} {prefix}rps_ratio_nginx={steady.ratio(name, 'nginx', 20):.2f} "
            f"{prefix}rps_ratio_haproxy={steady.ratio(name, 'haproxy', 20):.2f} "
            f"{prefix}cpu_us={steady.cpu_us(name, 20):.1f} {prefix}route_ms={statistics.median(calls):.2f} "
            f"{prefix}answered_p99_ms={switching[(name, 20)].answered_p99:.2f} "
            f"{prefix}haproxy_failed={switching[('haproxy', 20)].failed} "
            f"{prefix}haproxy_p99_ms={switching[('haproxy', 20)].p99:.2f} "
            f"{prefix}nginx_failed={switching[('nginx', 20)].failed}"
        )

    print(f"\nswitch: {figures('ours', '')} {figures('hap', 'hap_')} {floor}")
    return 0


def print_switching(
    args: argparse.Namespace,
    switching: dict[tuple[str, int], Switching],
    route_ms: dict[tuple[str, int], list[float]],
) -> None:
    print(f"\n{args.switches} blue/green switches {args.interval:g} s apart, a client that never retries")
    print("(per connection: switch = until its requests go to the new release, answered = until its first new")
    print(" answer; per switch: effect = until the first connection's did, an upper bound on the switch itself)")
    columns = f"{'answers':>9}{'failed':>8}{'samples':>9}{'switch p50':>12}{'p99 ms':>8}{'answered p99':>14}"
    columns += f"{'effect p99':>12}{'unmoved':>9}"
    print(f"{'front':<9}{'conns':>6}{columns}{'route p50':>11}{'p99 ms':>8}")
    for (name, conns), run in switching.items():
        calls = route_ms.get((name, conns), [])
        r50 = f"{statistics.median(calls):>11.2f}{percentile(calls, 99):>8.2f}" if calls else f"{'-':>11}{'-':>8}"
        print(
            f"{name:<9}{conns:>6}{run.answers:>9}{run.failed:>8}{len(run.samples):>9}{run.p50:>12.2f}{run.p99:>8.2f}"
            f"{run.answered_p99:>14.2f}{run.effect_p99:>12.2f}{run.unmoved:>9}{r50}"
        )


if __name__ == "__main__":
    sys.exit(main())
