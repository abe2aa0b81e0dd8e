"""The SSH host peers are what the hosts platform's tests claim: separate networks, real sshd, key-only,
pinned host keys, a front proxy balancing them, and nothing left behind."""

from __future__ import annotations

import base64
import io
import subprocess
import time
from collections.abc import Callable

import paramiko
import pytest
import requests

from tests.peers.postgres import free_port
from tests.peers.ssh_hosts import Fleet, Front, SshHost


def _client(fleet: Fleet, host: SshHost, *, pinned: bool = True) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    if pinned:
        kind, body = host.host_key_line.split()
        client.get_host_keys().add(host.address, kind, paramiko.Ed25519Key(data=base64.b64decode(body)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        host.address,
        username="root",
        pkey=paramiko.Ed25519Key.from_private_key(io.StringIO(fleet.client_key)),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    return client


def _run(client: paramiko.SSHClient, command: str) -> str:
    _, out, _ = client.exec_command(command, timeout=10)
    return out.read().decode()


def test_each_host_has_its_own_network_and_answers_ssh_with_its_pinned_key(ssh_fleet: Fleet) -> None:
    addresses = [h.address for h in ssh_fleet.hosts]
    assert len(set(addresses)) == 3
    for host in ssh_fleet.hosts:
        with _client(ssh_fleet, host) as client:
            seen = _run(client, "ip -o -4 addr show")
        assert host.address in seen
        assert all(other not in seen for other in addresses if other != host.address)
    root = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True).stdout
    assert all(address not in root for address in addresses), "host addresses exist only inside their namespaces"


def test_sshd_refuses_passwords_and_other_keys(ssh_fleet: Fleet) -> None:
    host = ssh_fleet.hosts[0]
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    with pytest.raises(paramiko.AuthenticationException):
        client.connect(host.address, username="root", password="root", look_for_keys=False, allow_agent=False)
    stranger = ssh_fleet.directory / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    other = paramiko.Ed25519Key.from_private_key_file(str(stranger))
    with pytest.raises(paramiko.AuthenticationException):
        client.connect(host.address, username="root", pkey=other, look_for_keys=False, allow_agent=False)
    client.close()


def test_a_replaced_host_key_is_a_different_key(ssh_fleet: Fleet) -> None:
    host = ssh_fleet.hosts[1]
    before = host.fingerprint()
    host.replace_host_key()
    assert host.fingerprint() != before
    with _client(ssh_fleet, host) as client:
        assert _run(client, "echo up").strip() == "up"


def test_the_front_balances_the_hosts_and_a_cut_off_host_drops_out(ssh_fleet: Fleet) -> None:
    port = free_port()
    for host in ssh_fleet.hosts:
        with _client(ssh_fleet, host) as client:
            # A detached answerer saying which host it is, started over SSH as a release would be.
            _run(
                client,
                f"mkdir -p {ssh_fleet.directory}/peer-{host.name} && cd {ssh_fleet.directory}/peer-{host.name} && "
                f"echo {host.name} > health && (setsid python3 -m http.server {port} --bind {host.address} "
                ">/dev/null 2>&1 < /dev/null &)",
            )
    front = ssh_fleet.start_front(port)
    answered = _until(lambda: {requests.get(f"{front.url}/health", timeout=5).text.strip() for _ in range(12)}, 3)
    assert answered == {"host0", "host1", "host2"}
    ssh_fleet.hosts[2].cut_off()
    _wait_down(front, "host2")
    assert {requests.get(f"{front.url}/health", timeout=5).text.strip() for _ in range(12)} == {"host0", "host1"}


def test_close_removes_namespaces_and_every_process_in_them(ssh_fleets: Callable[[int], Fleet]) -> None:
    fleet = ssh_fleets(1)
    host = fleet.hosts[0]
    with _client(fleet, host) as client:
        _run(client, "setsid sleep 600 >/dev/null 2>&1 < /dev/null &")
    pids = host.pids()
    assert len(pids) >= 2
    fleet.close()
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert host.namespace not in names
    assert not fleet.directory.exists()
    for pid in pids:
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _until(read: Callable[[], set[str]], size: int) -> set[str]:
    """`read()` once it has `size` members (haproxy marks a server up after its first good check)."""
    for _ in range(300):
        seen = read()
        if len(seen) >= size:
            return seen
    return read()


def _wait_down(front: Front, server: str) -> None:
    """Until haproxy's health checks mark `server` down (operational state 0 in `show servers state`)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in front.command("show servers state app").splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[3] == server and fields[5] == "0":
                return
        time.sleep(0.05)
    raise AssertionError(f"haproxy never marked {server} down")
