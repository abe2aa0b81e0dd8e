"""Blue/green switching under keep-alive load: our supervisor's proxy beside nginx with reloads.

    python bench/switch.py [--switches 30] [--interval 0.5] [--connections 20]

Two demo releases run as processes (started by our supervisor); both fronts reach the same two.
For each front, `wrk` (which never retries) drives continuous keep-alive load and counts every
failed request (socket errors and non-2xx), while probe threads on their own keep-alive
connections tag every answer with the release that served it and when it was sent. A switch
happens every `interval` seconds: ours through `LocalPlatform.route`, nginx by rewriting its
upstream and `nginx -s reload`.

Switch latency: from the moment the switch is requested until the first request after which
every probe request reaches the new release (none the old); p99 over the switches.
Everything stays on 127.0.0.1. Ends with one line:
`switch: failed=N p99_ms=X rps=X nginx_failed=N nginx_p99_ms=X nginx_rps=X`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.contract import LocalConfig
from orchestrator.platforms.local import LocalPlatform, supervisor_stop

NGINX = "/usr/sbin/nginx"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
PROBES = 4

WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKSTATS requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""

NGINX_CONF = """
user root;
worker_processes 1;
daemon on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  include {prefix}/upstream.conf;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


@dataclass(frozen=True)
class WrkStats:
    requests: int
    seconds: float
    failed: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class SwitchRun:
    load: WrkStats
    probe_requests: int
    probe_failed: int
    latencies_ms: list[float]

    @property
    def failed(self) -> int:
        return self.load.failed + self.probe_failed

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] if ordered else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_wrk(url: str, seconds: float, connections: int, script: Path) -> subprocess.Popen[str]:
    argv = [WRK, "-t2", f"-c{connections}", f"-d{seconds:.0f}s", "--timeout", "5s", "-s", str(script), url]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish_wrk(proc: subprocess.Popen[str]) -> WrkStats:
    out, _ = proc.communicate(timeout=60)
    found = re.search(r"WRKSTATS (.*)", out)
    if found is None:
        raise RuntimeError(f"wrk printed no statistics:\n{out}")
    v = {k: int(x) for k, x in (kv.split("=") for kv in found.group(1).split())}
    failed = v["connect"] + v["read"] + v["write"] + v["status"] + v["timeout"]
    return WrkStats(v["requests"], v["duration_us"] / 1e6, failed, v["p50_us"] / 1000, v["p99_us"] / 1000)


class Probe:
    """Keep-alive clients that record (send time, serving release or None on failure); never retry."""

    def __init__(self, port: int, count: int = PROBES) -> None:
        self.port = port
        self.samples: list[tuple[float, str | None]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]
        self._lock = threading.Lock()

    def __enter__(self) -> Probe:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        local: list[tuple[float, str | None]] = []
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                conn.request("GET", "/version")
                response = conn.getresponse()
                body = response.read()
                version = json.loads(body)["version"] if response.status == 200 else None
            except (OSError, http.client.HTTPException, ValueError):
                version = None
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            local.append((sent, version))
            time.sleep(0.0005)
        conn.close()
        with self._lock:
            self.samples.extend(local)


def switch_latencies(
    samples: list[tuple[float, str | None]], switches: list[tuple[float, str, str]], end: float
) -> list[float]:
    """Per switch (at t, from old to new): ms until the first request after which none reached the old."""
    ordered = sorted(samples)
    result = []
    for i, (at, old, new) in enumerate(switches):
        until = switches[i + 1][0] if i + 1 < len(switches) else end
        window = [(t, v) for t, v in ordered if at <= t < until and v is not None]
        last_old = max((j for j, (_, v) in enumerate(window) if v == old), default=-1)
        after = [t for t, v in window[last_old + 1 :] if v == new]
        result.append(((after[0] if after else until) - at) * 1000)
    return result


def run_switching(
    port: int,
    switch: Callable[[str], None],
    versions: tuple[str, str],
    *,
    switches: int,
    interval: float,
    connections: int,
    script: Path,
) -> SwitchRun:
    switch(versions[0])
    seconds = switches * interval + 2
    wrk = start_wrk(f"http://127.0.0.1:{port}/version", seconds, connections, script)
    time.sleep(0.5)
    done: list[tuple[float, str, str]] = []
    with Probe(port) as probe:
        time.sleep(0.2)
        current = versions[0]
        for i in range(switches):
            new = versions[(i + 1) % 2]
            at = time.monotonic()
            switch(new)
            done.append((at, current, new))
            current = new
            time.sleep(max(0.0, at + interval - time.monotonic()))
        end = time.monotonic()
    load = finish_wrk(wrk)
    failed = sum(1 for _, v in probe.samples if v is None)
    return SwitchRun(load, len(probe.samples), failed, switch_latencies(probe.samples, done, end))


class Nginx:
    def __init__(self, ports: dict[str, int]) -> None:
        self.prefix = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        self.port = free_port()
        self.ports = ports
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(NGINX_CONF.format(prefix=self.prefix, port=self.port))
        self._write_upstream(next(iter(ports)))
        self._nginx()
        wait_port(self.port)

    def _nginx(self, *args: str) -> None:
        subprocess.run([NGINX, "-p", str(self.prefix), "-c", str(self.conf), *args], check=True, capture_output=True)

    def _write_upstream(self, version: str) -> None:
        upstream = f"upstream app {{ server 127.0.0.1:{self.ports[version]}; keepalive 32; }}\n"
        (self.prefix / "upstream.conf").write_text(upstream)

    def switch(self, version: str) -> None:
        self._write_upstream(version)
        self._nginx("-s", "reload")

    def close(self) -> None:
        pid_file = self.prefix / "nginx.pid"
        with contextlib.suppress(Exception):
            pid = int(pid_file.read_text())
            self._nginx("-s", "quit")
            deadline = time.monotonic() + 5
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.prefix, ignore_errors=True)


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switches", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--baseline-seconds", type=float, default=3)
    args = parser.parse_args()
    for tool in (NGINX, WRK):
        if not Path(tool).exists():
            print(f"{tool} is missing: apt-get install nginx wrk", file=sys.stderr)
            return 2

    work = Path(tempfile.mkdtemp(prefix="bench-switch-"))
    script = work / "count.lua"
    script.write_text(WRK_SCRIPT)
    command = (sys.executable, "-m", "orchestrator.demo.app", "--port", "{port}", "--version", "{version}")
    config = LocalConfig(command=command, listen=f"127.0.0.1:{free_port()}", state_dir=Path("state"))
    platform = LocalPlatform(config, work)
    nginx: Nginx | None = None
    try:
        releases = {v: platform.start(v, None) for v in ("blue", "green")}
        ports = {v: int((r.url or "").rsplit(":", 1)[1]) for v, r in releases.items()}
        ours_port = int(config.listen.rsplit(":", 1)[1])
        platform.route({"blue": 100})
        nginx = Nginx(ports)
        versions = ("blue", "green")
        common = {"switches": args.switches, "interval": args.interval, "connections": args.connections}

        baseline = {}
        for name, port in (("app direct", ports["blue"]), ("our proxy", ours_port), ("nginx", nginx.port)):
            url = f"http://127.0.0.1:{port}/version"
            baseline[name] = finish_wrk(start_wrk(url, args.baseline_seconds, args.connections, script))
        switch_times: list[float] = []

        def switch_ours(version: str) -> None:
            began = time.monotonic()
            platform.route({version: 100})
            switch_times.append((time.monotonic() - began) * 1000)

        ours = run_switching(ours_port, switch_ours, versions, script=script, **common)
        theirs = run_switching(nginx.port, nginx.switch, versions, script=script, **common)
    finally:
        if nginx is not None:
            nginx.close()
        supervisor_stop(config, work)
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nsteady load, no switching: {args.connections} keep-alive connections, {args.baseline_seconds:g} s each")
    print(f"{'target':<12}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}")
    for name, stats in baseline.items():
        print(f"{name:<12}{stats.rps:>10.0f}{stats.p50_ms:>10.2f}{stats.p99_ms:>10.2f}{stats.failed:>8}")
    overhead = baseline["our proxy"].p50_ms - baseline["app direct"].p50_ms
    nginx_overhead = baseline["nginx"].p50_ms - baseline["app direct"].p50_ms
    print(f"proxy overhead at p50: ours {overhead:+.2f} ms, nginx {nginx_overhead:+.2f} ms")

    print(f"\n{args.switches} blue/green switches, one every {args.interval:g} s, under {args.connections} connections")
    header = f"{'front':<8}{'req/s':>9}{'failed':>8}{'(wrk':>6}{'probe)':>8}{'switch p50':>12}{'p99':>8}{'max ms':>8}"
    print(header)
    for name, run in (("ours", ours), ("nginx", theirs)):
        lat = run.latencies_ms
        print(
            f"{name:<8}{run.load.rps:>9.0f}{run.failed:>8}{run.load.failed:>6}{run.probe_failed:>8}"
            f"{statistics.median(lat):>12.1f}{run.p99_ms:>8.1f}{max(lat):>8.1f}"
        )
    print(f"probe requests: ours {ours.probe_requests}, nginx {theirs.probe_requests}")
    print(f"route call (switch request to acknowledged): median {statistics.median(switch_times):.2f} ms")
    print(
        f"switch: failed={ours.failed} p99_ms={ours.p99_ms:.1f} rps={ours.load.rps:.0f} "
        f"nginx_failed={theirs.failed} nginx_p99_ms={theirs.p99_ms:.1f} nginx_rps={theirs.load.rps:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
