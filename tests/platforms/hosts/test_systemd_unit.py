"""The systemd unit keeping a host's supervisor: when systemd can keep it, the exact unit, and the path without it.

This machine's PID 1 is not systemd (nor is it on CI: the namespace hosts share this machine's
init), so no unit is ever started here. What runs for real: the detection (here, and over SSH on
the namespace hosts in test_trust), the path without systemd to its end; what is checked exactly:
the unit text and the systemctl steps. Not covered here: systemd actually starting the unit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.contract import LocalConfig
from orchestrator.platforms.hosts.systemd_unit import (
    init_problem,
    keep_supervisor,
    plan_unit,
    supervisor_unit,
    systemctl_steps,
    unit_name,
)
from orchestrator.platforms.local.state import StatePaths

STATE = Path("/srv/shop/.deploy-orchestrator/state")


def test_systemd_keeps_the_supervisor_only_where_it_is_the_init() -> None:
    assert init_problem("/usr/bin/systemctl", "systemd") is None
    assert init_problem(None, "systemd") == "systemctl is not installed"
    assert init_problem("/usr/bin/systemctl", "tini") == "PID 1 is tini, not systemd (a container, or another init)"
    assert init_problem("/usr/bin/systemctl", "") == "PID 1 is unreadable, not systemd (a container, or another init)"


def test_a_system_unit_for_root_runs_the_supervisor_in_the_foreground_and_spares_its_children() -> None:
    plan = plan_unit(
        state=STATE,
        supervisor=["/usr/bin/python3", "-m", "orchestrator.platforms.local.daemon", "--state-dir", str(STATE)],
        environment=[("PYTHONPATH", "/root/.deploy-orchestrator/1.0-abc/orchestrator.pyz"), ("HOME", "/root")],
        root_user=True,
        home=Path("/root"),
    )
    name = unit_name(STATE)
    assert name.startswith("deploy-orchestrator-") and name.endswith(".service")
    assert (plan.path, plan.systemctl, plan.user) == (Path("/etc/systemd/system") / name, ("systemctl",), False)
    assert plan.text == (
        "# Written by deploy-orchestrator (platform hosts): keeps the supervisor of\n"
        f"# {STATE} running across reboots. Rewritten by every deploy; remove it with\n"
        f"# `systemctl disable --now {name}` and deleting this file.\n"
        "[Unit]\n"
        f"Description=deploy-orchestrator supervisor and proxy for {STATE}\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart=/usr/bin/python3 -m orchestrator.platforms.local.daemon --state-dir {STATE}\n"
        "Environment=PYTHONPATH=/root/.deploy-orchestrator/1.0-abc/orchestrator.pyz\n"
        "Environment=HOME=/root\n"
        f"WorkingDirectory={STATE}\n"
        "StandardOutput=null\n"
        f"StandardError=append:{STATE}/supervisor.log\n"
        "Restart=on-failure\n"
        "RestartSec=2\n"
        "KillMode=process\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def test_another_user_gets_a_user_unit_and_odd_characters_are_taken_literally() -> None:
    plan = plan_unit(
        state=Path("/home/deploy/my apps/state"),
        supervisor=["/usr/bin/python3", "--listen", "0.0.0.0:8080", "--label", '50%$HOME"x'],
        environment=[("PATH", "/usr/bin:/bin")],
        root_user=False,
        home=Path("/home/deploy"),
    )
    assert plan.path == Path("/home/deploy/.config/systemd/user") / unit_name(Path("/home/deploy/my apps/state"))
    assert plan.systemctl == ("systemctl", "--user")
    lines = plan.text.splitlines()
    assert 'ExecStart=/usr/bin/python3 --listen 0.0.0.0:8080 --label "50%%$$HOME\\"x"' in lines
    assert 'WorkingDirectory="/home/deploy/my apps/state"' in lines
    assert "WantedBy=default.target" in lines
    assert "systemctl --user disable --now" in plan.text


def test_the_supervisor_unit_starts_what_the_local_platform_would() -> None:
    config = LocalConfig(
        command=("python3", "app.py"), listen="0.0.0.0:8080", drain_seconds=3.0, proxy="python", max_connections=500
    )
    lines = supervisor_unit(config, STATE).text.splitlines()
    start = next(line for line in lines if line.startswith("ExecStart="))
    assert start.endswith(
        f"-m orchestrator.platforms.local.daemon --state-dir {STATE} --listen 0.0.0.0:8080 --drain-seconds 3.0 "
        "--proxy python --max-connections 500"
    )
    assert any(line.startswith("Environment=PYTHONPATH=") for line in lines)


def test_systemd_is_reloaded_only_for_a_changed_unit_and_starts_the_supervisor_only_if_none_runs() -> None:
    plan = plan_unit(state=STATE, supervisor=["true"], environment=[], root_user=True, home=Path("/root"))
    name = plan.name
    assert systemctl_steps(plan, changed=True, running=False) == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--quiet", name],
        ["systemctl", "start", name],
    ]
    assert systemctl_steps(plan, changed=False, running=True) == [["systemctl", "enable", "--quiet", name]]
    user = plan_unit(state=STATE, supervisor=["true"], environment=[], root_user=False, home=Path("/home/u"))
    assert systemctl_steps(user, changed=False, running=False) == [
        ["systemctl", "--user", "enable", "--quiet", user.name],
        ["systemctl", "--user", "start", user.name],
    ]


def test_without_systemd_as_pid_1_nothing_is_installed_and_the_answer_says_why(tmp_path: Path) -> None:
    pid1 = Path("/proc/1/comm").read_text().strip()
    if pid1 == "systemd":
        pytest.fail("this test asserts the path without systemd; this machine's PID 1 is systemd")
    plan = plan_unit(state=tmp_path / "state", supervisor=["true"], environment=[], root_user=True, home=tmp_path)
    plan = type(plan)(plan.name, tmp_path / "unit" / plan.name, plan.text, plan.systemctl, plan.user)

    keeper = keep_supervisor(StatePaths(tmp_path / "state"), plan)

    assert keeper.kind == "none"
    assert keeper.detail.startswith(f"no systemd (PID 1 is {pid1}, not systemd (a container, or another init)): ")
    assert "the next deploy re-adopts it" in keeper.detail
    assert not (tmp_path / "unit").exists()
