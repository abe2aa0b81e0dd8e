"""Real SSH hosts for the `hosts` platform: network namespaces, each running Debian's sshd.

Each host is a network namespace (`ip netns add`) joined to the root namespace by a veth pair whose
addresses exist only there (a /30 out of a 10.x.y.0/24 picked at random and checked free), with its
own loopback for the releases' ports and its own sshd: bound to the namespace's address, a throwaway
ed25519 host key, key-only auth, root allowed. The namespaces share the root filesystem (so the
host's Python is this machine's /usr/bin/python3) but not the network. A `Front` is a haproxy in the
root namespace balancing the hosts' public ports, with its runtime API on a socket.

Everything is removed by `Fleet.close` (every process in each namespace, sshd and haproxy, the
namespaces and so their veth ends); names carry a random tag so parallel worktrees never collide.
A machine without the tools fails saying what to install.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.postgres import free_port

__all__ = ["Fleet", "Front", "SshHost", "missing_tools", "start_fleet"]

_SSHD = "/usr/sbin/sshd"
_UP_SECONDS = 30.0


def missing_tools() -> str | None:
    """What to install for these peers, or None when everything is here."""
    if os.geteuid() != 0:
        return "the SSH host peers create network namespaces: run the tests as root"
    wanted = {"ip": "iproute2", "nsenter": "util-linux", "ssh-keygen": "openssh-client", "haproxy": "haproxy"}
    absent = [pkg for tool, pkg in wanted.items() if shutil.which(tool) is None]
    if not Path(_SSHD).exists():
        absent.append("openssh-server")
    if absent:
        return f"the SSH host peers need: apt-get install -y {' '.join(sorted(set(absent)))}"
    return None


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _in(namespace: str, *argv: str) -> str:
    return _run("ip", "netns", "exec", namespace, *argv)


@dataclass
class SshHost:
    """One host: its namespace, address, sshd and the keys a client needs."""

    name: str
    namespace: str
    address: str
    veth_host: str
    directory: Path
    host_key_line: str
    """`<type> <base64>`: this host's public key, for known_hosts."""
    gateway: str = ""
    """The root namespace's end of this host's link: where the host reaches services the tests run."""
    sshd: subprocess.Popen[bytes] | None = None
    session_env: dict[str, str] = field(default_factory=dict)
    """What sshd sets in every session: this host's own podman storage, and whatever a test adds."""

    @property
    def known_hosts_line(self) -> str:
        return f"{self.address} {self.host_key_line}"

    def fingerprint(self) -> str:
        """`SHA256:...` as `ssh-keygen -l` prints it."""
        out = _run("ssh-keygen", "-l", "-E", "sha256", "-f", str(self.directory / "host_key.pub"))
        return out.split()[1]

    def cut_off(self) -> None:
        """Take the host off the network (its link down), as a failed host or cable would."""
        _in(self.namespace, "ip", "link", "set", self.veth_host, "down")

    def reconnect(self) -> None:
        """The link up again; returns once sshd answers across it (the carrier comes back asynchronously)."""
        _in(self.namespace, "ip", "link", "set", self.veth_host, "up")
        assert self.sshd is not None
        _wait_for_port(self.address, 22, self.sshd, self.directory / "sshd.log")

    def replace_host_key(self) -> None:
        """A new host key under the same address (a reinstalled host, or a machine in the middle)."""
        for suffix in ("", ".pub"):
            (self.directory / f"host_key{suffix}").unlink()
        self.host_key_line = _new_host_key(self.directory)
        self._stop_sshd()
        self._start_sshd()

    def pids(self) -> list[int]:
        """Every process in this host's namespace (sshd, sessions, supervisor, releases)."""
        done = subprocess.run(["ip", "netns", "pids", self.namespace], capture_output=True, text=True, check=False)
        return [int(p) for p in done.stdout.split()]

    def set_session_env(self, **env: str) -> None:
        """Sessions from now on get these variables too (sshd's SetEnv; PATH=... hides programs)."""
        self.session_env.update(env)
        _write_sshd_config(self)
        self._stop_sshd()
        self._start_sshd()

    def _start_sshd(self) -> None:
        # nsenter --net, not `ip netns exec`: that remounts /sys for the namespace, without the cgroup
        # mounts podman needs to run a release's container.
        self.sshd = subprocess.Popen(
            [
                "nsenter",
                f"--net=/run/netns/{self.namespace}",
                _SSHD,
                "-D",
                "-e",
                "-f",
                str(self.directory / "sshd_config"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "sshd.log", "ab"),  # noqa: SIM115 - the child owns it
        )
        _wait_for_port(self.address, 22, self.sshd, self.directory / "sshd.log")

    def _stop_sshd(self) -> None:
        if self.sshd is not None and self.sshd.poll() is None:
            self.sshd.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.sshd.wait(10)
            if self.sshd.poll() is None:
                self.sshd.kill()
                self.sshd.wait(10)


@dataclass
class Front:
    """haproxy in the root namespace balancing the hosts' public port (health-checked), runtime API on `socket`."""

    url: str
    socket: Path
    process: subprocess.Popen[bytes]

    def command(self, line: str) -> str:
        """One runtime API command (`set server app/host0 state maint`), its answer."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.socket))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()


@dataclass
class Fleet:
    """The hosts, the client key they accept, and what `close` removes."""

    tag: str
    directory: Path
    hosts: list[SshHost]
    client_key: str
    """The private key (OpenSSH PEM text) every host accepts for root."""
    fronts: list[Front] = field(default_factory=list)

    @property
    def known_hosts(self) -> str:
        return "".join(h.known_hosts_line + "\n" for h in self.hosts)

    def start_front(self, app_port: int, health_path: str = "/health") -> Front:
        """A haproxy on 127.0.0.1 balancing every host's `app_port`, checking `health_path` every 100 ms.

        A failed connection or a 503 is retried on another host. Every host is also listed as an unchecked
        backup: before the first release answers anywhere every check has failed, and a load balancer
        that then tried nothing would refuse the very first deploy's verification.
        """
        port = free_port()
        sock = self.directory / f"front-{port}.sock"
        servers = "\n".join(
            f"    server {h.name} {h.address}:{app_port} check inter 100ms fall 2 rise 1" for h in self.hosts
        )
        servers += "\n" + "\n".join(f"    server {h.name}-any {h.address}:{app_port} backup" for h in self.hosts)
        config = self.directory / f"front-{port}.cfg"
        config.write_text(
            "global\n"
            f"    stats socket {sock} mode 600 level admin\n"
            "defaults\n"
            "    mode http\n"
            # Connecting over a veth pair is the kernel's work alone: a host that does not answer in 500 ms is gone.
            "    timeout connect 500ms\n    timeout client 30s\n    timeout server 30s\n"
            "    option http-keep-alive\n"
            "    retries 3\n    option redispatch 1\n    retry-on conn-failure empty-response response-timeout 503\n"
            f"frontend public\n    bind 127.0.0.1:{port}\n    default_backend app\n"
            "backend app\n    balance roundrobin\n"
            f"    option httpchk GET {health_path}\n"
            f"{servers}\n"
        )
        log = self.directory / f"front-{port}.log"
        process = subprocess.Popen(
            ["haproxy", "-db", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(log, "ab"),  # noqa: SIM115 - the child owns it
        )
        _wait_for_port("127.0.0.1", port, process, log)
        front = Front(f"http://127.0.0.1:{port}", sock, process)
        self.fronts.append(front)
        return front

    def close(self) -> None:
        """Remove everything: idempotent, and it goes on past any one failure."""
        for front in self.fronts:
            _end(front.process)
        for host in self.hosts:
            host._stop_sshd()
            for _ in range(3):
                pids = host.pids()
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.2)  # the kernel reaps what SIGKILL ended; then look again
            subprocess.run(["ip", "netns", "delete", host.namespace], capture_output=True, check=False)
        for mount in _mounts_under(self.directory):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


def _mounts_under(directory: Path) -> list[str]:
    """Mount points inside `directory` (a killed container's overlay), deepest first."""
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    return sorted((p for p in points if p.startswith(f"{directory}/")), key=len, reverse=True)


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_for_port(address: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _UP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited ({process.returncode}): {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
            return
        time.sleep(0.05)  # polling a port the server is about to open
    raise RuntimeError(f"nothing listens on {address}:{port} after {_UP_SECONDS:.0f} s: {log.read_text()[-2000:]}")


def _new_host_key(directory: Path) -> str:
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(directory / "host_key"))
    kind, body = (directory / "host_key.pub").read_text().split()[:2]
    return f"{kind} {body}"


def _free_subnet() -> str:
    """`10.a.b`: a /24 no interface of the root namespace uses."""
    used = _run("ip", "-o", "-4", "addr", "show")
    for _ in range(100):
        prefix = f"10.{random.randint(64, 250)}.{random.randint(0, 255)}"
        if f" {prefix}." not in used:
            return prefix
    raise RuntimeError("no free 10.x.y.0/24 for the SSH host peers")


def start_fleet(count: int) -> Fleet:
    """`count` hosts with sshd up. Raises RuntimeError naming what is missing; leaves nothing behind on failure."""
    problem = missing_tools()
    if problem:
        raise RuntimeError(problem)
    tag = secrets.token_hex(3)
    directory = Path(tempfile.mkdtemp(prefix=f"ssh-hosts-{tag}-"))
    directory.chmod(0o700)
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(directory / "client_key"))
    fleet = Fleet(tag, directory, [], (directory / "client_key").read_text())
    # Also when the caller never gets to close it (a benchmark interrupted, a test run aborted).
    atexit.register(fleet.close)
    try:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        # Held from picking the subnet until its addresses exist: fleets started at once (pytest-xdist workers,
        # other checkouts' suites) never pick the same one.
        with open(Path(tempfile.gettempdir()) / "deploy-orchestrator-ssh-subnets.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            subnet = _free_subnet()
            for i in range(count):
                fleet.hosts.append(_start_host(fleet, i, subnet))
    except BaseException:
        fleet.close()
        raise
    return fleet


def _start_host(fleet: Fleet, i: int, subnet: str) -> SshHost:
    namespace = f"deploy-{fleet.tag}-{i}"
    outer, inner = f"do{fleet.tag}r{i}", f"do{fleet.tag}n{i}"
    root_address, address = f"{subnet}.{4 * i + 1}", f"{subnet}.{4 * i + 2}"
    _run("ip", "netns", "add", namespace)
    host_dir = fleet.directory / f"host{i}"
    host_dir.mkdir()
    host = SshHost(f"host{i}", namespace, address, inner, host_dir, _new_host_key(host_dir), gateway=root_address)
    # The pair is made inside the namespace, so a failure below never leaves an end in the root one.
    _in(namespace, "ip", "link", "add", inner, "type", "veth", "peer", "name", outer)
    _in(namespace, "ip", "link", "set", outer, "netns", "1")
    _run("ip", "addr", "add", f"{root_address}/30", "dev", outer)
    _run("ip", "link", "set", outer, "up")
    _in(namespace, "ip", "addr", "add", f"{address}/30", "dev", inner)
    _in(namespace, "ip", "link", "set", inner, "up")
    _in(namespace, "ip", "link", "set", "lo", "up")
    (host_dir / "authorized_keys").write_text((fleet.directory / "client_key.pub").read_text())
    host.session_env.update(_own_containers(host_dir))
    _write_sshd_config(host)
    host._start_sshd()
    return host


def _own_containers(host_dir: Path) -> dict[str, str]:
    """podman settings of this host alone: its own image store (an image is on a host only once loaded
    or pulled there), runc and cgroupfs (what works inside these namespaces), limits runc can set."""
    storage, conf = host_dir / "containers-storage.conf", host_dir / "containers.conf"
    storage.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{host_dir / "containers"}"\nrunroot = "{host_dir / "run"}"\n'
    )
    conf.write_text(
        # The supervisor raises its open-file limit to the hard one, more than runc may set in a container.
        '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=20000:20000"]\n'
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n'
        f'events_logger = "file"\nevents_logfile_path = "{host_dir / "events.log"}"\n'
        f'tmp_dir = "{host_dir / "podman-tmp"}"\n'
    )
    return {"CONTAINERS_STORAGE_CONF": str(storage), "CONTAINERS_CONF": str(conf)}


def _write_sshd_config(host: SshHost) -> None:
    host_dir, address = host.directory, host.address
    env = " ".join(f"{k}={v}" for k, v in sorted(host.session_env.items()))
    (host_dir / "sshd_config").write_text(
        f"ListenAddress {address}:22\n"
        f"HostKey {host_dir / 'host_key'}\n"
        f"PidFile {host_dir / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {host_dir / 'authorized_keys'}\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nUseDNS no\n"
        "MaxSessions 50\nMaxStartups 50\n"
        "ClientAliveInterval 5\nClientAliveCountMax 2\n"
        "Subsystem sftp internal-sftp\nLogLevel ERROR\n" + (f"SetEnv {env}\n" if env else "")
    )
