"""The supervisor gap: how long the local public address stops answering when its supervisor is SIGKILLed.

    python bench/supervisor_gap.py [--kills 5]

One demo release runs behind our proxy process. Under load (threads sending GETs back to back, half
on fresh connections, half kept alive), the supervisor is SIGKILLed `kills` times; each time we
measure the longest stretch without a successful answer, the requests that failed, and how long
until a supervisor answered its control socket again (the proxy process relaunches it). The peer is
nginx's master/worker model in the same run: its worker is SIGKILLed and the master, which holds the
listening socket, forks another (the best-known way to survive a dead worker). Everything stays on
127.0.0.1. Ends with one line:
`supervisor: gap_s=X failed=N readopt_s=X nginx_gap_s=X nginx_failed=N`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.contract import LocalConfig
from orchestrator.platforms.local import LocalPlatform, supervisor_stop
from tests.platforms.local.supervisor_gap import GapMeasurement, measure_gap, measure_supervisor_gap

NGINX = "/usr/sbin/nginx"
NGINX_CONF = """
user root;
worker_processes 1;
daemon on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream app {{ server 127.0.0.1:{upstream}; keepalive 32; }}
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_workers(master: int) -> list[int]:
    """Pids of the nginx processes whose parent is `master`."""
    workers = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == master:
                    workers.append(int(entry.name))
    return workers


def nginx_peer(upstream: int, kills: int) -> list[GapMeasurement]:
    prefix = Path(tempfile.mkdtemp(prefix="bench-gap-nginx-"))
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, upstream=upstream))
    subprocess.run([NGINX, "-p", str(prefix), "-c", str(conf)], check=True, capture_output=True)
    master = int((prefix / "nginx.pid").read_text())
    try:
        results = []
        for _ in range(kills):
            deadline = time.monotonic() + 10
            while not nginx_workers(master):
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx started no worker")
                time.sleep(0.01)
            (victim,) = nginx_workers(master)

            def back(victim: int = victim) -> bool:
                return any(pid != victim for pid in nginx_workers(master))

            results.append(
                measure_gap(f"http://127.0.0.1:{port}", lambda v=victim: os.kill(v, signal.SIGKILL), back=back)
            )
        return results
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(master, signal.SIGQUIT)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{master}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(master, signal.SIGKILL)
        shutil.rmtree(prefix, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    if not Path(NGINX).exists():
        print(f"{NGINX} is missing: apt-get install nginx-light", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-gap-"))
    command = (sys.executable, "-m", "orchestrator.demo.app", "--port", "{port}", "--version", "{version}")
    config = LocalConfig(command=command, listen=f"127.0.0.1:{free_port()}", state_dir=Path("state"), source=None)
    platform = LocalPlatform(config, work)
    try:
        release = platform.start("v1", None)
        platform.route({"v1": 100})
        ours = [measure_supervisor_gap(platform) for _ in range(args.kills)]
        peer = nginx_peer(int((release.url or "").rsplit(":", 1)[1]), args.kills)
    finally:
        with contextlib.suppress(Exception):
            supervisor_stop(config, work)
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'front':<34} {'kills':>5} {'max gap s':>10} {'failed':>7} {'answered':>9} {'back s (max)':>13}")
    for name, runs in (("ours: supervisor SIGKILL", ours), ("nginx: worker SIGKILL (peer)", peer)):
        back = [r.back_s for r in runs if r.back_s is not None]
        print(
            f"{name:<34} {len(runs):>5} {max(r.gap_s for r in runs):>10.4f} {sum(r.failed for r in runs):>7} "
            f"{sum(r.answered for r in runs):>9} {max(back) if back else float('nan'):>13.3f}"
        )
    readopt = [r.back_s for r in ours if r.back_s is not None]
    print("(back s: until a new supervisor answers, for ours; until nginx forked a new worker, for the peer)")
    print(
        f"supervisor: gap_s={max(r.gap_s for r in ours):.4f} failed={sum(r.failed for r in ours)} "
        f"readopt_s={max(readopt) if len(readopt) == len(ours) else float('nan'):.3f} "
        f"nginx_gap_s={max(r.gap_s for r in peer):.4f} nginx_failed={sum(r.failed for r in peer)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
