"""Odoo modules: manifests read as data, the upgrade plan, and upgrades against real local peers."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

from orchestrator.artifacts import digest_artifacts
from orchestrator.contract import Artifacts, OdooConfig
from orchestrator.errors import ConfigError, DeployError
from orchestrator.odoo import OdooModule, plan_upgrade, read_modules, upgrade
from tests.peers.odoo import SCRIPT, OdooServer
from tests.peers.verdicts import silent_server

MODULE = Path("addons/sale_extras")


def _write_manifest(workspace: Path, text: str) -> None:
    (workspace / MODULE / "__manifest__.py").write_text(text)


def test_manifest_is_read_as_data(workspace: Path) -> None:
    (module,) = read_modules([MODULE], workspace)
    assert module == OdooModule(
        path="addons/sale_extras", name="sale_extras", version="17.0.1.2.0", depends=("base", "sale")
    )
    assert module.to_dict() == {
        "path": "addons/sale_extras",
        "name": "sale_extras",
        "version": "17.0.1.2.0",
        "depends": ["base", "sale"],
    }


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (
            "{'name': 'x', 'version': __import__('os').system('touch /tmp/pwned')}",
            "a function call (__import__('os').system(...))",
        ),
        ("{'name': 'x', 'depends': BASE_DEPENDS}", "a name (BASE_DEPENDS)"),
        ("{'name': 'x', 'version': os.environ}", "an attribute (os.environ)"),
        ("{'name': 'x', 'data': [f for f in ('a', 'b')]}", "an expression (ListComp)"),
    ],
)
def test_a_manifest_that_tries_to_execute_code_is_refused(
    workspace: Path, tmp_path: Path, manifest: str, expected: str
) -> None:
    _write_manifest(workspace, manifest)
    with pytest.raises(ConfigError) as caught:
        read_modules([MODULE], workspace)
    message = str(caught.value)
    assert "artifacts.odoo_modules[0]: addons/sale_extras/__manifest__.py: line 1:" in message
    assert f"{expected} is code, not data" in message
    assert not Path("/tmp/pwned").exists()


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ("import os\n{'name': 'x'}", "not a single dict literal (SyntaxError"),
        ("manifest = {'name': 'x'}", "not a single dict literal (SyntaxError"),
        ("['name', 'x']", "must be one dict literal, found List"),
        ("{'name': 'x', 'version': 17.0}", "`version` must be a string"),
        ("{'name': 'x', 'depends': 'base'}", "`depends` must be a list of module names"),
        ("{'name': 'x', **{'a': 1}}", "not a literal dict"),
    ],
)
def test_a_manifest_that_is_not_a_dict_literal_is_refused(workspace: Path, manifest: str, expected: str) -> None:
    _write_manifest(workspace, manifest)
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(")):
        read_modules([MODULE], workspace)


def test_a_directory_without_a_manifest_or_with_a_bad_name_is_refused(workspace: Path) -> None:
    (workspace / "addons" / "empty").mkdir()
    (workspace / "addons" / "bad-name").mkdir()
    (workspace / "addons" / "bad-name" / "__manifest__.py").write_text("{}")
    with pytest.raises(ConfigError) as caught:
        read_modules([Path("addons/empty"), Path("addons/bad-name"), Path("../x")], workspace)
    problems = caught.value.problems
    assert (
        problems[0]
        == "artifacts.odoo_modules[0]: addons/empty has no __manifest__.py; list Odoo module directories here"
    )
    assert "'bad-name' is not a valid Odoo module name" in problems[1]
    assert "outside the workspace" in problems[2]


def test_plan_upgrade_lists_new_and_changed_modules_only(workspace: Path) -> None:
    other = workspace / "addons" / "stock_extras"
    other.mkdir()
    (other / "__manifest__.py").write_text("{'name': 'Stock', 'version': '1.0'}")
    paths = (MODULE, Path("addons/stock_extras"))
    modules = read_modules(paths, workspace)
    digests = digest_artifacts(Artifacts(odoo_modules=paths, migrations=()), workspace)
    current = dict(digests.modules)
    assert plan_upgrade(modules, digests, {}) == ("sale_extras", "stock_extras")
    assert plan_upgrade(modules, digests, current) == ()
    changed = {**current, "addons/stock_extras": "0" * 64}
    assert plan_upgrade(modules, digests, changed) == ("stock_extras",)


def _command_config(**kwargs: object) -> OdooConfig:
    argv = (sys.executable, "-P", SCRIPT, "-d", "{database}", "-u", "{modules}", "--stop-after-init")
    return OdooConfig(upgrade_command=argv, database="prod", **kwargs)  # type: ignore[arg-type]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "FAKE_ODOO_RECORD": str(tmp_path / "calls.jsonl"), **extra}


def _calls(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_upgrade_command_gets_the_modules_and_database(workspace: Path, tmp_path: Path) -> None:
    lines: list[str] = []

    class Log:
        def info(self, message: str) -> None:
            lines.append(message)

    outcome = upgrade(["sale_extras", "stock_extras"], _command_config(), _env(tmp_path), workspace, log=Log())
    assert _calls(tmp_path) == [
        {
            "argv": ["-d", "prod", "-u", "sale_extras,stock_extras", "--stop-after-init"],
            "cwd": str(workspace),
        }
    ]
    assert outcome.method == "command" and outcome.modules == ("sale_extras", "stock_extras")
    assert "odoo: done" in outcome.output_tail
    assert lines[0].startswith("odoo: upgrading sale_extras, stock_extras with ")
    assert lines[-1].startswith("odoo: upgraded sale_extras, stock_extras in ")


def test_nothing_to_upgrade_runs_nothing(workspace: Path, tmp_path: Path) -> None:
    assert upgrade([], _command_config(), _env(tmp_path), workspace).method == "none"
    assert _calls(tmp_path) == []


def test_a_failing_upgrade_command_raises_with_the_output_tail_redacted(workspace: Path, tmp_path: Path) -> None:
    from orchestrator.redaction import Secret

    Secret("db-password-9f8e7d", "ODOO_DB_PASSWORD")
    env = _env(tmp_path, FAKE_ODOO_EXIT="3", FAKE_ODOO_OUTPUT="psycopg2: connect to postgres:db-password-9f8e7d@db")
    with pytest.raises(DeployError) as caught:
        upgrade(["sale_extras"], _command_config(), env, workspace)
    message = str(caught.value)
    assert message.startswith("odoo upgrade command exited with 3 upgrading sale_extras")
    assert "odoo: ERROR upgrading modules" in message
    assert "db-password-9f8e7d" not in message and "postgres:***@db" in message
    assert caught.value.operation == "odoo-upgrade"


def test_a_hanging_upgrade_command_is_killed_at_the_timeout_with_its_workers(workspace: Path, tmp_path: Path) -> None:
    """Like Odoo, the command forks a worker that holds its output open and never ends by itself: the call
    returns only because the timeout kills the whole process group (else it waits on that output for ever)."""
    pidfile = tmp_path / "worker.pid"
    # sh starts in milliseconds, so its first line is out long before the 2 s timeout even on a loaded machine.
    script = f'echo "odoo: loading modules"; sleep 600 & echo $! > {pidfile}; wait'
    config = OdooConfig(upgrade_command=("/bin/sh", "-c", script, "{modules}"), timeout_seconds=2)

    with pytest.raises(DeployError, match=r"timed out after 2 s \(odoo.timeout_seconds\) and was killed") as caught:
        upgrade(["sale_extras"], config, _env(tmp_path), workspace)

    assert "odoo: loading modules" in str(caught.value)
    assert _ended(int(pidfile.read_text())), "the forked worker outlived the kill"


def _ended(pid: int, wait_seconds: float = 10.0) -> bool:
    """The process is gone or a zombie (killed, not yet reaped by whoever adopted it)."""
    stat = Path(f"/proc/{pid}/stat")
    until = time.monotonic() + wait_seconds
    while True:
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X") or time.monotonic() > until:
            return state in ("Z", "X")
        time.sleep(0.05)


def test_a_missing_upgrade_binary_is_a_deploy_error(workspace: Path, tmp_path: Path) -> None:
    config = OdooConfig(upgrade_command=("/nonexistent/odoo-bin", "-u", "{modules}"))
    with pytest.raises(DeployError, match="'/nonexistent/odoo-bin' could not start"):
        upgrade(["sale_extras"], config, _env(tmp_path), workspace)


def test_database_placeholder_without_a_database_is_a_config_error(workspace: Path, tmp_path: Path) -> None:
    config = OdooConfig(upgrade_command=("odoo", "-d", "{database}", "-u", "{modules}"))
    with pytest.raises(ConfigError, match=r"odoo.database: required, odoo.upgrade_command uses \{database\}"):
        upgrade(["sale_extras"], config, _env(tmp_path), workspace)


def _xmlrpc_config(server: OdooServer, **kwargs: object) -> OdooConfig:
    values: dict[str, object] = {
        "xmlrpc_url": server.url,
        "database": "prod",
        "username": "admin",
        "password_env_var": "ODOO_PASSWORD",
        **kwargs,
    }
    return OdooConfig(**values)  # type: ignore[arg-type]


def test_xmlrpc_upgrade_authenticates_searches_and_upgrades(odoo_server: OdooServer, workspace: Path) -> None:
    odoo_server.add_module("sale_extras")
    odoo_server.add_module("stock_extras")
    outcome = upgrade(
        ["sale_extras", "stock_extras"], _xmlrpc_config(odoo_server), {"ODOO_PASSWORD": odoo_server.password}, workspace
    )
    assert odoo_server.upgraded == [["sale_extras", "stock_extras"]]
    assert odoo_server.calls == [
        ("ir.module.module", "search_read"),
        ("ir.module.module", "button_immediate_upgrade"),
    ]
    assert outcome.method == "xmlrpc"


def test_xmlrpc_wrong_password_is_refused_without_showing_it(odoo_server: OdooServer, workspace: Path) -> None:
    with pytest.raises(DeployError) as caught:
        upgrade(["sale_extras"], _xmlrpc_config(odoo_server), {"ODOO_PASSWORD": "wrong-pass-5555"}, workspace)
    assert "user 'admin' could not log in to database 'prod'" in str(caught.value)
    assert "wrong-pass-5555" not in str(caught.value)
    assert odoo_server.upgraded == []


def test_xmlrpc_server_fault_carries_the_server_output(odoo_server: OdooServer, workspace: Path) -> None:
    odoo_server.add_module("sale_extras")
    odoo_server.fail_upgrade = (
        "Traceback (most recent call last):\n  File odoo/modules/loading.py\n"
        f"psycopg2.errors.NotNullViolation: password {odoo_server.password} column sale_order.x"
    )
    with pytest.raises(DeployError) as caught:
        upgrade(["sale_extras"], _xmlrpc_config(odoo_server), {"ODOO_PASSWORD": odoo_server.password}, workspace)
    message = str(caught.value)
    assert "refused the upgrade of sale_extras" in message
    assert "NotNullViolation" in message
    assert odoo_server.password not in message


def test_xmlrpc_unknown_and_uninstalled_modules_are_named(odoo_server: OdooServer, workspace: Path) -> None:
    env = {"ODOO_PASSWORD": odoo_server.password}
    with pytest.raises(DeployError, match="no module sale_extras in database 'prod'; update the apps list"):
        upgrade(["sale_extras"], _xmlrpc_config(odoo_server), env, workspace)
    odoo_server.add_module("sale_extras", state="uninstalled")
    with pytest.raises(DeployError, match="sale_extras not installed in database 'prod'"):
        upgrade(["sale_extras"], _xmlrpc_config(odoo_server), env, workspace)
    assert odoo_server.upgraded == []


def test_xmlrpc_timeout_is_a_deploy_error(odoo_server: OdooServer, workspace: Path) -> None:
    odoo_server.add_module("sale_extras")
    odoo_server.delay = 2
    with pytest.raises(DeployError, match=r"no answer within 0.3 s \(odoo.timeout_seconds\)"):
        upgrade(
            ["sale_extras"],
            _xmlrpc_config(odoo_server, timeout_seconds=0.3),
            {"ODOO_PASSWORD": odoo_server.password},
            workspace,
        )


def test_xmlrpc_server_that_never_answers_times_out(workspace: Path) -> None:
    with silent_server() as silent:
        config = OdooConfig(
            xmlrpc_url=f"http://127.0.0.1:{silent.port}",
            database="prod",
            username="admin",
            password_env_var="ODOO_PASSWORD",
            timeout_seconds=0.3,
        )
        with pytest.raises(DeployError, match=re.escape("no answer within 0.3 s")):
            upgrade(["sale_extras"], config, {"ODOO_PASSWORD": "pw-odoo-1"}, workspace)


def test_xmlrpc_missing_settings_are_config_errors(workspace: Path) -> None:
    expected = "odoo.username, odoo.password_env_var: required with odoo.xmlrpc_url"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        upgrade(["sale_extras"], OdooConfig(xmlrpc_url="http://127.0.0.1:9", database="prod"), {}, workspace)
    config = OdooConfig(xmlrpc_url="http://127.0.0.1:9", database="prod", username="a", password_env_var="P")
    with pytest.raises(ConfigError, match="the environment variable P is not set"):
        upgrade(["sale_extras"], config, {}, workspace)
    with pytest.raises(ConfigError, match=re.escape("neither odoo.upgrade_command nor odoo.xmlrpc_url")):
        upgrade(["sale_extras"], OdooConfig(), {}, workspace)
    with pytest.raises(ConfigError, match="'a,b' is not a valid Odoo module name"):
        upgrade(["a,b"], _command_config(), {}, workspace)
