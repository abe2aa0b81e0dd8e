"""The hosts platform's config: what the schema and the descriptor refuse, exactly, and the lock key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.config import parse_config
from orchestrator.errors import ConfigError
from orchestrator.platforms import registry
from orchestrator.platforms.hosts.settings import settings_of
from tests.workspace import base_config


def _document(**hosts: Any) -> dict[str, Any]:
    document = base_config()
    document["deployment_config"] = {
        "strategy": "blue_green",
        "platform": "hosts",
        "local": {"command": ["python3", "app.py", "--port", "{port}"], "listen": "0.0.0.0:8080"},
        "hosts": {"hosts": [{"address": "10.0.0.11"}, {"address": "10.0.0.12", "port": 2222}], **hosts},
    }
    document["credentials"]["ssh_private_key_env_var"] = "DEPLOY_SSH_KEY"
    if "public_url" not in hosts:
        document["deployment_config"]["hosts"]["public_url"] = "https://shop.example"
    return document


def _problems(document: dict[str, Any], workspace: Path) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as error:
        parse_config(document, workspace)
    return error.value.problems


def test_a_hosts_config_parses_into_the_contract(tmp_path: Path) -> None:
    config = parse_config(_document(max_parallel=2, trust_on_first_use=True), tmp_path)
    hosts = settings_of(config.deployment)
    assert [(h.address, h.port, h.user, h.root) for h in hosts.hosts] == [
        ("10.0.0.11", 22, "root", "~/.deploy-orchestrator"),
        ("10.0.0.12", 2222, "root", "~/.deploy-orchestrator"),
    ]
    assert (hosts.public_url, hosts.max_parallel, hosts.trust_on_first_use, hosts.python) == (
        "https://shop.example",
        2,
        True,
        "python3",
    )
    assert "DEPLOY_SSH_KEY" in config.secret_env_vars()
    described = registry.descriptor("hosts")
    assert described.lock_key(config.deployment) == "hosts/root@10.0.0.11:22,root@10.0.0.12:2222"


def test_the_descriptor_refuses_what_the_hosts_cannot_run(tmp_path: Path) -> None:
    document = _document()
    deployment = document["deployment_config"]
    deployment["local"].update(listen="127.0.0.1:8080", state_dir="state")
    deployment["hosts"]["hosts"].append({"address": "10.0.0.11"})
    del document["credentials"]["ssh_private_key_env_var"]
    assert _problems(document, tmp_path) == (
        "credentials.ssh_private_key_env_var: required when platform is hosts; name the variable holding the SSH "
        "private key (a secret)",
        "deployment_config.local.state_dir: not used on platform hosts (each host keeps its state under "
        "hosts.hosts[].root); remove it",
        "deployment_config.hosts.hosts[2]: 10.0.0.11:22 is listed twice; list each host once",
        "deployment_config.local.listen: '127.0.0.1:8080' is the hosts' loopback, which the load balancer in front "
        "cannot reach; listen on 0.0.0.0:<port> or the host's private address",
    )


def test_hosts_and_local_are_required(tmp_path: Path) -> None:
    document = _document()
    del document["deployment_config"]["hosts"]
    del document["deployment_config"]["local"]
    assert _problems(document, tmp_path) == (
        "deployment_config.hosts: required when platform is hosts; add hosts: {hosts: [{address: ...}], "
        "public_url: 'https://...'}",
        "deployment_config.local: required when platform is hosts (what each host runs); add local: "
        "{command: [...], listen: '0.0.0.0:8080'}",
    )


def test_a_malformed_fingerprint_is_refused_by_the_schema(tmp_path: Path) -> None:
    document = _document()
    document["deployment_config"]["hosts"]["hosts"][0]["fingerprint"] = "MD5:aa:bb"
    problems = _problems(document, tmp_path)
    assert len(problems) == 1 and problems[0].startswith("deployment_config.hosts.hosts[0].fingerprint:")


def test_labels_that_select_nothing_are_refused_naming_the_fix(tmp_path: Path) -> None:
    document = _document(canary_labels={"role": "canary"}, group_by="zone", max_parallel=2)
    document["deployment_config"]["hosts"]["hosts"][0]["labels"] = {"role": "web"}
    assert _problems(document, tmp_path) == (
        "deployment_config.hosts.max_parallel: with group_by, a whole group moves at a time; remove max_parallel or "
        "group_by",
        "deployment_config.hosts.canary_labels: no host carries role=canary; add those labels to the canary hosts "
        "(hosts[].labels) or remove canary_labels",
        "deployment_config.hosts.group_by: no host has the label 'zone'; label the hosts (hosts[].labels.zone) or "
        "remove group_by",
    )


def test_labels_shape_the_rollout_units(tmp_path: Path) -> None:
    document = _document(canary_labels={"role": "canary"}, group_by="zone")
    document["deployment_config"]["hosts"]["hosts"][0]["labels"] = {"zone": "a"}
    document["deployment_config"]["hosts"]["hosts"][1]["labels"] = {"zone": "b", "role": "canary"}
    hosts = settings_of(parse_config(document, tmp_path).deployment)
    assert (hosts.canary_labels, hosts.group_by) == ((("role", "canary"),), "zone")
