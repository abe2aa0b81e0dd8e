"""Which host keys the `hosts` platform trusts, and the client key it signs in with.

Host keys are pinned: known_hosts lines (from the variable `credentials.ssh_known_hosts_env_var`
names) and/or a `SHA256:` fingerprint per host. A key nothing pins is refused, and so is a key other
than the pinned one (paramiko checks a known key before authenticating, so nothing is sent, let
alone run), unless `hosts.trust_on_first_use` says to accept an unknown one (logged, to be pinned).

The private key is parsed in memory from its `Secret` and never written anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging

import paramiko

from orchestrator.errors import ConfigError, GateError
from orchestrator.redaction import Secret

__all__ = ["HostKeyRefused", "Pins", "fingerprint", "load_private_key"]

log = logging.getLogger(__name__)

_KEY_TYPES: tuple[type[paramiko.PKey], ...] = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


class HostKeyRefused(GateError):
    """A host's key is not the pinned one (or nothing pins it): nothing was sent to any host."""

    def __init__(self, message: str, *, host: str) -> None:
        super().__init__(message, gate="host_key", facts={"host": host})
        self.host = host


def fingerprint(key: paramiko.PKey) -> str:
    """`SHA256:<base64, unpadded>`, as `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def load_private_key(secret: Secret, variable: str) -> paramiko.PKey:
    """The client key from its secret text. Raises ConfigError naming the variable (never the key)."""
    text = secret.reveal()
    for kind in _KEY_TYPES:
        try:
            return kind.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise ConfigError(
        f"credentials.ssh_private_key_env_var: {variable} does not hold an unencrypted OpenSSH or PEM "
        "private key (ed25519, ecdsa or rsa); put the key's text in that secret"
    )


class Pins:
    """The pinned host keys; builds the policy each connection checks them with."""

    def __init__(self, known_hosts: str, fingerprints: dict[str, str], *, trust_on_first_use: bool) -> None:
        self.known = paramiko.HostKeys()
        for number, line in enumerate(known_hosts.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno=number)
            if entry is None or entry.key is None:
                raise ConfigError(
                    f"credentials.ssh_known_hosts_env_var: line {number} is not a known_hosts line "
                    "(`host key-type base64`); copy it from `ssh-keyscan -H host` checked against the host"
                )
            for name in entry.hostnames:
                self.known.add(name, entry.key.get_name(), entry.key)
        self.fingerprints = fingerprints
        """Host name (as `HostConfig.name`) to `SHA256:...`."""
        self.trust_on_first_use = trust_on_first_use

    def apply(self, client: paramiko.SSHClient, host: str) -> None:
        """Make `client` refuse any key for `host` but the pinned one."""
        for name, keys in self.known.items():
            for kind, key in keys.items():
                client.get_host_keys().add(name, kind, key)
        client.set_missing_host_key_policy(_Policy(self, host))

    def refusal(self, host: str, presented: paramiko.PKey, expected: str | None) -> HostKeyRefused:
        if expected is None:
            return HostKeyRefused(
                f"host {host} presented a host key nothing pins ({presented.get_name()} {fingerprint(presented)}); "
                "refused before anything was sent: check that fingerprint on the host (ssh-keygen -lf "
                "/etc/ssh/ssh_host_*.pub) and pin it (hosts[].fingerprint or the known_hosts variable), or set "
                "hosts.trust_on_first_use: true to accept unknown keys",
                host=host,
            )
        return HostKeyRefused(
            f"host {host} presented host key {fingerprint(presented)}, not the pinned {expected}: the host was "
            "reinstalled or something is in the middle; refused before anything was sent. If the host was "
            "reinstalled, pin its new key",
            host=host,
        )


class _Policy(paramiko.MissingHostKeyPolicy):
    """Called for a key the known_hosts lines do not name (a different known one fails in paramiko)."""

    def __init__(self, pins: Pins, host: str) -> None:
        self._pins = pins
        self._host = host

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        expected = self._pins.fingerprints.get(self._host)
        if expected is not None and expected == fingerprint(key):
            return
        if expected is None and self._pins.trust_on_first_use:
            log.warning(
                "host %s: trusting its unknown host key %s on first use (pin it: hosts[].fingerprint)",
                self._host,
                fingerprint(key),
            )
            return
        raise self._pins.refusal(self._host, key, expected)
