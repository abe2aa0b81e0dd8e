"""A switch staged on a host ahead of the moment it fires: what keeps the spread across hosts small.

A whole-set switch is two steps. `arm` (sent to every host in parallel, as slowly as it likes) checks
the new table against the releases this host's supervisor runs, opens the connection to the
supervisor's control socket and encodes the request; nothing changes yet. `fire` (sent to every host
back to back once all are armed) then costs one write on an open socket and the supervisor's own
switch, so the hosts switch as close together as their SSH channels deliver one short line.

An armed switch that never fires changes nothing: `disarm`, a new request, or the deploying side
going away (the agent's stdin closes) drops the connection unsent.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.platforms.local.channel import reachable
from orchestrator.platforms.local.routing import check_weights
from orchestrator.platforms.local.state import StatePaths

__all__ = ["ArmedSwitch", "SwitchRefused"]

_ANSWER_SECONDS = 30.0


class SwitchRefused(Exception):
    """The supervisor refused the switch (its own words)."""


class ArmedSwitch:
    """One routing change, connected and encoded, waiting for `fire`."""

    def __init__(
        self,
        paths: StatePaths,
        weights: Mapping[str, int],
        running: set[str],
        *,
        fallback: Callable[[dict[str, int]], None],
    ) -> None:
        """Raises ValueError if `weights` names a release that does not run here (nothing is opened then)."""
        self.weights = check_weights(dict(weights), running)
        self._request = json.dumps({"op": "route", "weights": self.weights}).encode() + b"\n"
        self._fallback = fallback
        self._sock: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(_ANSWER_SECONDS)
        try:
            with reachable(paths.socket) as where:
                self._sock.connect(where)
        except OSError:
            # No supervisor answers now: `fire` goes the long way (the local platform starts one).
            self.disarm()

    def fire(self) -> float:
        """Send the staged request; the time the supervisor answered that the switch is in effect.

        Raises SwitchRefused with the supervisor's refusal, OSError if it stopped answering mid-way.
        """
        sock, self._sock = self._sock, None
        if sock is None:
            self._fallback(self.weights)
            return time.time()
        with contextlib.closing(sock):
            try:
                sock.sendall(self._request)
                data = _answer(sock)
            except (BrokenPipeError, ConnectionResetError):
                data = b""
            at = time.time()
        if not data:
            # The supervisor went away since `arm` (and every route is idempotent): the long way, once.
            self._fallback(self.weights)
            return time.time()
        reply: dict[str, Any] = json.loads(data)
        if not reply["ok"]:
            raise SwitchRefused(str(reply["error"]))
        return at

    def disarm(self) -> None:
        """Drop the connection unsent. Idempotent."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data
