"""Host keys are pinned (a changed or unknown one refuses before anything is sent), the key stays secret,
and a host without a usable Python gets a clear error."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError, DeployError, GateError
from orchestrator.platforms.hosts.trust import HostKeyRefused
from tests.platforms.hosts.conftest import Site
from tests.platforms.hosts.workspace import KNOWN_HOSTS_VAR

# Real SSH hosts: every case signs in, installs and starts releases on three of them (a minute on a busy machine).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _roots(site: Site) -> list[Path]:
    return [Path(h["root"]) for h in site.document["deployment_config"]["hosts"]["hosts"]]


def test_a_changed_host_key_refuses_before_any_host_is_touched(site: Site) -> None:
    changed = site.fleet.hosts[1]
    changed.replace_host_key()
    platform = site.platform()

    with pytest.raises(HostKeyRefused) as refused:
        platform.live()

    assert isinstance(refused.value, GateError) and refused.value.exit_code == 3
    assert refused.value.host == changed.address
    assert f"host {changed.address} presented host key {changed.fingerprint()}, not the pinned SHA256:" in str(
        refused.value
    )
    assert "refused before anything was sent" in str(refused.value)
    assert [root.exists() for root in _roots(site)] == [False, False, False], "nothing installed on any host"


def test_an_unknown_host_key_refuses_unless_trust_on_first_use_is_set(site: Site) -> None:
    env = {k: v for k, v in site.env.items() if k != KNOWN_HOSTS_VAR}
    with pytest.raises(HostKeyRefused) as refused:
        site.platform(env=env).live()
    assert "presented a host key nothing pins" in str(refused.value)
    assert "hosts.trust_on_first_use: true" in str(refused.value)
    assert [root.exists() for root in _roots(site)] == [False, False, False]

    trusting = site.platform(site.config(hosts={"trust_on_first_use": True}), env=env)
    assert trusting.live() is None


def test_fingerprints_in_the_config_pin_the_host_keys(site: Site) -> None:
    env = {k: v for k, v in site.env.items() if k != KNOWN_HOSTS_VAR}
    hosts = [dict(h, fingerprint=site.fleet.hosts[i].fingerprint()) for i, h in enumerate(_hosts(site))]
    platform = site.platform(site.config(hosts={"hosts": hosts}), env=env)
    site.deploy(platform, "v1", config=site.config(hosts={"hosts": hosts}))
    assert site.through_front() == {"v1"}

    hosts[2]["fingerprint"] = site.fleet.hosts[0].fingerprint()
    with pytest.raises(HostKeyRefused, match=f"host {site.fleet.hosts[2].address} presented host key"):
        site.platform(site.config(hosts={"hosts": hosts}), env=env).live()


def test_a_host_without_python_is_a_clear_error(site: Site) -> None:
    platform = site.platform(site.config(hosts={"python": "python3-not-installed"}))
    with pytest.raises(DeployError) as error:
        platform.live()
    host = site.fleet.hosts[0].address
    assert f"host {host}: the host's Python `python3-not-installed` was not found; install Python 3.11 or newer" in str(
        error.value
    )
    assert "or set hosts.python to its path" in str(error.value)


def test_the_ssh_key_is_never_logged_written_or_passed_in_argv(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    platform = site.platform()
    site.deploy(platform, "v1")
    # The first base64 line is the same in every unencrypted ed25519 key: the rest is this key's.
    body = [line for line in site.fleet.client_key.splitlines() if line and "PRIVATE KEY" not in line][1:]
    assert not any(line in caplog.text for line in body)
    for host in site.fleet.hosts:
        for pid in host.pids():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
            except OSError:
                continue
            assert not any(line in argv or line in environ for line in body), argv
    leaked = [
        p
        for p in site.workspace.rglob("*")
        if p.is_file() and any(line in p.read_text(errors="replace") for line in body)
    ]
    assert leaked == []


def test_a_missing_key_variable_is_a_config_error_naming_it(site: Site) -> None:
    env = {k: v for k, v in site.env.items() if k != "DEPLOY_SSH_KEY"}
    with pytest.raises(ConfigError, match=r"credentials\.ssh_private_key_env_var: DEPLOY_SSH_KEY holds no SSH private"):
        site.platform(env=env)
    with pytest.raises(ConfigError, match="does not hold an unencrypted OpenSSH or PEM private key"):
        site.platform(env={**site.env, "DEPLOY_SSH_KEY": "not a key"})


def _hosts(site: Site) -> list[dict[str, object]]:
    return list(site.document["deployment_config"]["hosts"]["hosts"])
