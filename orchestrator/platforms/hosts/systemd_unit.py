"""The systemd unit that keeps a host's supervisor alive across reboots and crashes, where systemd runs.

Runs ON the host (the agent calls `keep_supervisor` at every `configure`). systemd keeps the
supervisor only where it is the init: `systemctl` is installed and PID 1 is systemd (in a container
or under another init, `systemctl` may be there and still manage nothing). Root gets a system unit
(/etc/systemd/system, started at boot); any other user a user unit (~/.config/systemd/user, started
at boot only if the user lingers: `loginctl enable-linger`, tried here, and said when refused).

The unit runs the supervisor in the foreground with the same arguments the agent's own launch uses,
restarts it when it fails, and stops only the supervisor itself (`KillMode=process`): the proxy
process and the releases it started outlive a supervisor restart and are adopted by the next one,
as after any supervisor restart. After a reboot the supervisor starts them again from their
snapshots. Where systemd is not the init nothing is installed: the supervisor runs detached as on
platform local, and the next deploy re-adopts it after a reboot. Either way the answer says which.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orchestrator
from orchestrator.contract import LocalConfig
from orchestrator.errors import DeployError
from orchestrator.platforms.local.control import ControlClient, SupervisorNotRunningError
from orchestrator.platforms.local.data_plane import DataPlane
from orchestrator.platforms.local.state import StatePaths

__all__ = [
    "Keeper",
    "UnitPlan",
    "init_problem",
    "keep_supervisor",
    "plan_unit",
    "supervisor_unit",
    "systemctl_steps",
    "unit_name",
]

_UP_SECONDS = 15.0
_COMMAND_SECONDS = 30.0
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@")


@dataclass(frozen=True, slots=True)
class Keeper:
    """What keeps a host's supervisor: `kind` is `systemd-system`, `systemd-user` or `none`."""

    kind: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class UnitPlan:
    name: str
    path: Path
    text: str
    systemctl: tuple[str, ...]
    """`systemctl`, or `systemctl --user`."""
    user: bool


def init_problem(systemctl: str | None, pid1: str) -> str | None:
    """Why systemd cannot keep the supervisor on this host, or None when it can."""
    if systemctl is None:
        return "systemctl is not installed"
    if pid1 != "systemd":
        return f"PID 1 is {pid1 or 'unreadable'}, not systemd (a container, or another init)"
    return None


def unit_name(state: Path) -> str:
    """One unit per state directory, so several host sets on one server never share one."""
    return f"deploy-orchestrator-{hashlib.sha256(str(state).encode()).hexdigest()[:12]}.service"


def plan_unit(
    *,
    state: Path,
    supervisor: Sequence[str],
    environment: Sequence[tuple[str, str]],
    root_user: bool,
    home: Path,
) -> UnitPlan:
    """The unit for the supervisor of `state`, started as `supervisor` (argv, foreground)."""
    name = unit_name(state)
    lines = [
        "# Written by deploy-orchestrator (platform hosts): keeps the supervisor of",
        f"# {state} running across reboots. Rewritten by every deploy; remove it with",
        f"# `systemctl {'' if root_user else '--user '}disable --now {name}` and deleting this file.",
        "[Unit]",
        f"Description=deploy-orchestrator supervisor and proxy for {state}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={' '.join(_quote(arg) for arg in supervisor)}",
        *(f"Environment={_quote(f'{key}={value}')}" for key, value in environment),
        f"WorkingDirectory={_quote(str(state))}",
        "StandardOutput=null",
        f"StandardError=append:{_quote(str(state / 'supervisor.log'))}",
        "Restart=on-failure",
        "RestartSec=2",
        # The proxy process and the releases outlive a supervisor restart; the next one adopts them.
        "KillMode=process",
        "",
        "[Install]",
        f"WantedBy={'multi-user.target' if root_user else 'default.target'}",
        "",
    ]
    if root_user:
        return UnitPlan(name, Path("/etc/systemd/system") / name, "\n".join(lines), ("systemctl",), user=False)
    return UnitPlan(
        name, home / ".config" / "systemd" / "user" / name, "\n".join(lines), ("systemctl", "--user"), user=True
    )


def supervisor_unit(config: LocalConfig, state: Path) -> UnitPlan:
    """The unit starting the supervisor of `state` as `LocalPlatform` would, with this process's code
    and Python (the agent's: the orchestrator's zipapp and its native library on PYTHONPATH)."""
    package = str(Path(orchestrator.__file__).resolve().parent.parent)
    python_path = os.pathsep.join(p for p in (package, os.environ.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", "orchestrator.platforms.local.daemon", "--state-dir", str(state)]
    argv += ["--listen", config.listen, "--drain-seconds", str(config.drain_seconds)]
    argv += DataPlane(config.proxy, config.max_connections).argv()
    environment = [("PYTHONPATH", python_path), ("HOME", str(Path.home()))]
    environment += [(name, os.environ[name]) for name in ("PATH", "LANG") if name in os.environ]
    return plan_unit(
        state=state, supervisor=argv, environment=environment, root_user=os.geteuid() == 0, home=Path.home()
    )


def _quote(arg: str) -> str:
    """One word of a unit file line: specifiers (`%`) and variables (`$`) taken literally."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if arg and set(arg) <= _SAFE:
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _run(argv: Sequence[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=_COMMAND_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return done.returncode, (done.stderr or done.stdout).strip()


def _pid1() -> str:
    try:
        return Path("/proc/1/comm").read_text().strip()
    except OSError:
        # hidepid hides PID 1's name: systemd's own test (sd_booted) still answers.
        return "systemd" if Path("/run/systemd/system").is_dir() else ""


def systemctl_steps(plan: UnitPlan, *, changed: bool, running: bool) -> list[list[str]]:
    """What to ask systemd once the unit file is in place: reload if it changed, enable it, and start
    the supervisor through it unless one already runs (that one keeps serving; systemd starts the
    next one, after a reboot)."""
    steps = [[*plan.systemctl, "daemon-reload"]] if changed else []
    steps.append([*plan.systemctl, "enable", "--quiet", plan.name])
    if not running:
        steps.append([*plan.systemctl, "start", plan.name])
    return steps


def keep_supervisor(paths: StatePaths, plan: UnitPlan) -> Keeper:
    """Install and enable `plan`'s unit, and start the supervisor through it unless one runs.

    Never raises: a unit that cannot be installed leaves the supervisor to the agent (as without
    systemd), and the Keeper says what failed and what to do.
    """
    problem = init_problem(shutil.which("systemctl"), _pid1())
    if problem is not None:
        return Keeper(
            "none",
            f"no systemd ({problem}): the supervisor runs detached and is not restarted after a reboot "
            "or a crash; the next deploy re-adopts it",
        )
    try:
        plan.path.parent.mkdir(parents=True, exist_ok=True)
        changed = not plan.path.is_file() or plan.path.read_text() != plan.text
        if changed:
            incoming = plan.path.with_name(f".{plan.name}.{os.getpid()}")
            incoming.write_text(plan.text)
            incoming.chmod(0o644)
            incoming.replace(plan.path)
    except OSError as exc:
        return Keeper("none", f"systemd runs, but the unit {plan.path} cannot be written ({exc}); {_fallback()}")
    for argv in systemctl_steps(plan, changed=changed, running=_answers(paths)):
        status, said = _run(argv)
        if status != 0:
            return Keeper("none", f"`{' '.join(argv)}` failed (exit {status}: {said[-300:]}); {_fallback()}")
    kind = "systemd-user" if plan.user else "systemd-system"
    detail = f"{plan.path} ({plan.name}) keeps the supervisor running across reboots"
    if plan.user:
        detail += _linger()
    if not _wait_until_up(paths):
        return Keeper(kind, f"{detail}; but it did not answer within {_UP_SECONDS:.0f} s (see {paths.supervisor_log})")
    return Keeper(kind, detail)


def _fallback() -> str:
    return "the supervisor runs detached instead (not restarted after a reboot; the next deploy re-adopts it)"


def _linger() -> str:
    user = os.environ.get("USER") or str(os.getuid())
    status, said = _run(["loginctl", "show-user", user, "--property=Linger", "--value"])
    if status == 0 and said == "yes":
        return ""
    status, _ = _run(["loginctl", "enable-linger", user])
    if status == 0:
        return " (lingering enabled for the user, so it starts at boot)"
    return f"; it starts at the user's login, not at boot, until root runs `loginctl enable-linger {user}`"


def _answers(paths: StatePaths) -> bool:
    try:
        ControlClient(paths).call("status", timeout=5.0)
    except SupervisorNotRunningError:
        return False
    except DeployError:
        return True  # something answers there, if not as hoped: the agent's own start says what
    return True


def _wait_until_up(paths: StatePaths) -> bool:
    deadline = time.monotonic() + _UP_SECONDS
    while time.monotonic() < deadline:
        if _answers(paths):
            return True
        time.sleep(0.05)  # systemd started it (Type=simple): its control socket comes up shortly
    return False
