"""The haproxy data plane (`local.proxy: haproxy`): Debian's haproxy in master-worker mode on the
public address, driven through its runtime API on the admin socket `haproxy.sock`.

Switches, canary weights and drains never reload haproxy: `sync` adds a server per new replica (`add
server`), moves traffic with `set weight` and `set server … state ready|drain`, and puts servers no
longer wanted in maintenance, then deletes them once idle (`haproxy_plan` decides, this module does).
haproxy balances every request on its own, so the next request on a keep-alive connection follows a
switch while requests in flight finish where they are. The config file is rewritten after every change,
so it describes the servers as they are; a change only the config can make (the connection cap, the
drain time) is applied by a hitless reload: SIGUSR2 to the master, whose new worker takes over the
listening socket while the old one finishes its requests. The rewrite happens beside the switch, not in
it (overwriting a file waits on the filesystem's journal, milliseconds on a busy disk); a supervisor that
dies before it is done leaves an older file, which the next one rewrites from haproxy's own account of
its servers before it could ever reload (`attach`).

haproxy runs in a session of its own, so it outlives the supervisor; the next supervisor adopts it (its
pid is in `haproxy.pid`). This class has the interface of `proxy_link.ProxyLink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import os
import resource
import shutil
import signal
import time
from collections.abc import Mapping
from typing import Any

from orchestrator.platforms.local.child import SILENT_SECONDS, Child, ChildStartError
from orchestrator.platforms.local.data_plane import DEFAULT_MAX_CONNECTIONS
from orchestrator.platforms.local.haproxy_cli import RuntimeApi
from orchestrator.platforms.local.haproxy_plan import (
    BACKEND,
    Server,
    commands,
    config_text,
    server_name,
    version_of,
    wanted_servers,
)
from orchestrator.platforms.local.process import is_alive
from orchestrator.platforms.local.state import StatePaths

__all__ = ["HaproxyError", "HaproxyLink"]

log = logging.getLogger(__name__)

_START_SECONDS = 15.0
_ASK_SECONDS = 5.0
_POLL_SECONDS = 0.005
_EXIT_MARGIN_SECONDS = 5.0
_MAX_THREADS = 64


class HaproxyError(Exception):
    """haproxy is missing, did not start, or refused a command; the message says which and why."""


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return ("127.0.0.1" if host == "localhost" else host), int(port)


class HaproxyLink:
    def __init__(
        self, paths: StatePaths, listen: str, drain_seconds: float, max_connections: int = DEFAULT_MAX_CONNECTIONS
    ) -> None:
        self._paths = paths
        self._listen = listen
        self.drain_seconds = drain_seconds
        self._max_connections = max_connections
        self._config = paths.root / "haproxy.cfg"
        self._pidfile = paths.root / "haproxy.pid"
        self._applied = paths.root / "haproxy.applied"
        """The settings (the config less its servers) the running haproxy took. The config file cannot
        tell: it is written before the reload that reads it, which a crash or a refusal may never see."""
        self._log = paths.root / "haproxy.log"
        self._socket = paths.root / "haproxy.sock"
        self._child = Child("haproxy", self._log)
        self._api = RuntimeApi(self._socket)
        self._serial = asyncio.Lock()
        """Held by a start and by a sync: two syncs at once (the monitor's and a switch's) would both
        read the servers, both add the missing ones, and the second would be refused."""
        self._weights: dict[str, int] = {}
        self._known: dict[str, Server] | None = None
        """The servers as the last sync left them (None: ask haproxy)."""
        self._config_due: str | None = None
        """Config text not yet written (see the module docstring)."""
        self._config_writer: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._child.pid

    # --- the process ----------------------------------------------------------------------------

    async def attach(self) -> bool:
        """Adopt the haproxy serving our state directory (True), or start one (False). One that is alive
        but never answers is killed first: a second haproxy could not take the port from it. Raises
        HaproxyError."""
        identity = self._recorded()
        if identity is not None and is_alive(*identity):
            self._child.adopt(identity)
            settled = await self._child.settle(self._answers, SILENT_SECONDS)
            if settled == "answering":
                servers = await self._servers()
                self._config.write_text(self._text(servers))
                settings = self._text({})
                if self._applied_settings() != settings and await self._reload():
                    self._applied.write_text(settings)
                log.info("adopted haproxy %d serving %s", identity[0], self._listen)
                return True
            if settled == "silent":
                log.warning("haproxy %d does not answer on %s: killing it", identity[0], self._socket)
                await self._child.kill()
        await self._spawn()
        return False

    def _applied_settings(self) -> str | None:
        try:
            return self._applied.read_text()
        except OSError:
            return None

    async def _reload(self) -> bool:
        """Hitless: on SIGUSR2 the master starts a new worker, which takes the listening sockets over
        while the old one finishes its requests. Returns once the admin socket is the new worker's (a
        session kept with the old one would send commands to a worker that no longer routes): True, or
        False if no new worker came (the old one goes on with the old settings)."""
        before = await self._worker_pid()
        self._child.signal(signal.SIGUSR2)
        deadline = time.monotonic() + _START_SECONDS
        while True:
            self._api.close()
            with contextlib.suppress(OSError, TimeoutError):
                if await self._worker_pid() not in (before, None):
                    log.info("haproxy %s reloaded with the current settings", self.pid)
                    return True
            if time.monotonic() >= deadline:
                # The master keeps the old worker when the new config fails: it goes on serving.
                log.warning("haproxy %s did not take its new config; see %s", self.pid, self._log)
                return False
            await asyncio.sleep(_POLL_SECONDS)

    async def _worker_pid(self) -> int | None:
        (info,) = await self._ask("show info", timeout=1.0)
        pids = [line.partition(":")[2].strip() for line in info.splitlines() if line.startswith("Pid:")]
        return int(pids[0]) if pids else None

    def alive(self) -> bool:
        return self._child.alive()

    async def ensure(self, unanswered: bool = False) -> bool:
        """Start haproxy again if it is gone; True if it was. `unanswered`: the caller saw it refuse, so
        one still alive is given time to answer or be seen gone, and killed if it stays silent. A call
        made while another is starting it returns once that one is up."""
        async with self._serial:
            return await self._child.revive(self._answers, self._spawn, unanswered=unanswered, where=self._listen)

    async def _spawn(self) -> None:
        binary = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
        if binary is None:
            raise HaproxyError("local.proxy is haproxy but no haproxy is installed: apt-get install haproxy")
        await self.config_written()  # an older text written late would be what haproxy reads
        self._config_due = None
        settings = self._text({})
        self._config.write_text(settings)
        self._applied.unlink(missing_ok=True)
        self._socket.unlink(missing_ok=True)
        self._api.close()  # the sessions of an haproxy that is gone
        self._known = None
        # -W: master-worker in the foreground of its own session (cwd stays the state directory, where
        # its admin socket lives); it outlives the supervisor like a daemon would.
        argv = [binary, "-W", "-f", str(self._config)]
        try:
            await self._child.start(
                argv,
                cwd=self._paths.root,
                ready=self._answers,
                timeout=_START_SECONDS,
                stdout_to_log=True,
                started=self._record,
            )
        except ChildStartError as exc:
            raise HaproxyError(f"haproxy did not come up on {self._listen}: {exc}") from exc
        self._applied.write_text(settings)
        log.info("haproxy %s serving %s", self.pid, self._listen)

    def _record(self, identity: tuple[int, int]) -> None:
        pid, pid_start = identity
        self._pidfile.write_text(json.dumps({"pid": pid, "pid_start": pid_start}))

    def _recorded(self) -> tuple[int, int] | None:
        try:
            doc = json.loads(self._pidfile.read_text())
            return int(doc["pid"]), int(doc["pid_start"])
        except (OSError, ValueError, KeyError):
            return None

    def _text(self, servers: Mapping[str, Server]) -> str:
        # haproxy needs two descriptors per connection and refuses to start when the hard limit is lower.
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        cap = self._max_connections if hard == resource.RLIM_INFINITY else min(self._max_connections, (hard - 64) // 2)
        # One traffic thread per CPU it may run on, as haproxy would choose (its limit is 64 threads in all).
        threads = min(len(os.sched_getaffinity(0)), _MAX_THREADS - 1)
        return config_text(
            parse_listen(self._listen),
            servers,
            max_connections=cap,
            stop_seconds=self.drain_seconds,
            traffic_threads=threads,
        )

    # --- the runtime API ------------------------------------------------------------------------

    async def _ask(self, *commands: str, timeout: float = _ASK_SECONDS) -> list[str]:
        """Each command's answer (see `haproxy_cli`). Raises OSError or TimeoutError."""
        return await self._api.ask(commands, timeout)

    async def _answers(self) -> bool:
        try:
            return "Name: HAProxy" in (await self._ask("show info", timeout=1.0))[0]
        except (OSError, TimeoutError):
            return False

    async def _stats(self) -> list[dict[str, str]]:
        (text,) = await self._ask(f"show stat {BACKEND} 4 -1")
        return [row for row in csv.DictReader(io.StringIO(text.lstrip("# "))) if row.get("svname")]

    async def _servers(self) -> dict[str, Server]:
        servers = {}
        for row in await self._stats():
            status = row["status"]
            weight = -1 if status.startswith("MAINT") else 0 if status.startswith("DRAIN") else int(row["weight"])
            port = int(row["addr"].rpartition(":")[2])
            servers[row["svname"]] = Server(row["svname"], port, weight)
        return servers

    async def status(self) -> dict[str, Any] | None:
        """What haproxy serves (the `ProxyLink.status` shape), or None if it does not answer."""
        try:
            rows = await self._stats()
        except (OSError, TimeoutError):
            return None
        backends: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["status"].startswith("MAINT"):
                continue
            entry = backends.setdefault(version_of(row["svname"]), {"ports": [], "inflight": 0})
            entry["ports"].append(int(row["addr"].rpartition(":")[2]))
            entry["inflight"] += int(row["scur"] or 0) + int(row["qcur"] or 0)
        return {"pid": self.pid, "listen": self._listen, "weights": dict(self._weights), "backends": backends}

    async def traffic(self) -> dict[str, Any]:
        """Each release's counters from `show stat`, summed over its servers. haproxy keeps no latency
        histogram (only averages), so `buckets` is None and the analysis judges errors alone."""
        releases: dict[str, dict[str, Any]] = {}
        for row in await self._stats():
            entry = releases.setdefault(
                version_of(row["svname"]),
                {"requests": 0, "statuses": [0, 0, 0, 0, 0], "failed": 0, "buckets": None},
            )
            answered = [int(row[f"hrsp_{n}xx"] or 0) for n in range(1, 6)]
            failed = int(row["eresp"] or 0)
            entry["statuses"] = [a + b for a, b in zip(entry["statuses"], answered, strict=True)]
            entry["failed"] += failed
            entry["requests"] += sum(answered) + failed
        return {"source": "haproxy", "releases": releases}

    async def sync(
        self,
        backends: Mapping[str, tuple[int, ...]],
        weights: Mapping[str, int],
        sticky: Mapping[str, str | None] | None = None,
    ) -> None:
        """Make haproxy serve exactly `backends` with `weights`, through the runtime API (no reload).
        Sticky sessions are our proxy's alone (config refuses them with haproxy): `sticky` is not used.
        Raises HaproxyError if haproxy refuses a command, OSError if it does not answer."""
        async with self._serial:
            await self._sync(backends, weights)

    async def _sync(self, backends: Mapping[str, tuple[int, ...]], weights: Mapping[str, int]) -> None:
        # One round trip when nothing needs deleting: the servers as last left stand in for `show stat`.
        current = self._known if self._known is not None else await self._servers()
        wanted = wanted_servers(backends, weights)
        steps, gone = commands(current, wanted)
        self._known = None  # unknown until the commands are known to have been taken
        if steps:
            answers = await self._ask(*steps)
            refused = [line for answer in answers for line in answer.splitlines() if _is_refusal(line)]
            if refused:
                raise HaproxyError(f"haproxy refused {steps!r}: {refused}")
        known = dict(wanted)
        # Deleting needs the server idle; one still finishing a request is deleted at a later sync.
        answers = await self._ask(*(f"del server {BACKEND}/{name}" for name in gone)) if gone else []
        for name, answer in zip(gone, answers, strict=True):
            if not any(word in answer.lower() for word in ("deleted", "no such server")):
                known[name] = Server(name, current[name].port, -1)
        self._known = known
        self._weights = {v: w for v, w in weights.items() if w > 0}
        self._config_due = self._text({n: s for n, s in known.items() if s.weight >= 0})
        if self._config_writer is None:
            self._config_writer = asyncio.create_task(self._write_config())

    async def _write_config(self) -> None:
        """Write the latest config text due, until none is (several syncs meanwhile: only the last)."""
        try:
            while self._config_due is not None:
                text, self._config_due = self._config_due, None
                await asyncio.to_thread(self._config.write_text, text)
        except OSError as exc:
            log.warning(
                "could not write %s (%s); the next supervisor rewrites it from haproxy's servers", self._config, exc
            )
        finally:
            self._config_writer = None

    async def config_written(self) -> None:
        """Return once the config file describes the servers as the last sync left them."""
        while self._config_writer is not None:
            await asyncio.shield(self._config_writer)

    def route(self, weights: Mapping[str, int], sticky: Mapping[str, str | None] | None = None) -> bool:
        """False: haproxy's routing always goes through `sync` (the runtime API); see `ProxyLink.route`."""
        return False

    async def mark_down(self, version: str, index: int) -> None:
        """A hint: the replica exited. Its health check brings it back once it listens again."""
        with contextlib.suppress(OSError, TimeoutError):
            await self._ask(f"set server {BACKEND}/{server_name(version, index)} health down")

    async def drain(self, version: str, timeout: float) -> bool:
        """Wait until no request to `version` is in flight; False if some still are after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            status = await self.status()
            if status is None or not status["backends"].get(version, {}).get("inflight"):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL_SECONDS)

    async def stop(self, drain_seconds: float) -> None:
        """Soft-stop: haproxy stops accepting, lets its requests finish (at most `drain_seconds`), exits;
        past that, its whole process group (master and workers) is killed."""
        await self.config_written()
        if self._child.identity is None:
            return
        self._child.signal(signal.SIGUSR1)
        await self._child.wait_gone(drain_seconds + _EXIT_MARGIN_SECONDS)
        self._pidfile.unlink(missing_ok=True)


def _is_refusal(line: str) -> bool:
    text = line.strip()
    if not text:
        return False
    accepted = ("New server registered", "No need to change")
    return not text.startswith(accepted)
