"""A valid config document -> the frozen contract types the run reads (`DeployConfig`).

`config.py` validates; this only builds, trusting what it checked. A platform added since the seed
builds its own block through its descriptor (`PlatformDescriptor.settings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from orchestrator.config_canary import canary_options
from orchestrator.contract import (
    AgentbenchConfig,
    Artifacts,
    CanaryStep,
    Credentials,
    DatabaseCheck,
    DeployConfig,
    DeployLockConfig,
    DeploymentConfig,
    GatesConfig,
    HealthCheckConfig,
    HttpCheck,
    JobCheck,
    LedgerConfig,
    LocalConfig,
    MetricCheck,
    MetricsConfig,
    MigrationsConfig,
    NotificationsConfig,
    OdooConfig,
    RollbackConfig,
    RollingConfig,
    Strategy,
    VerificationConfig,
)
from orchestrator.platforms import registry

__all__ = ["build_config"]


def build_config(doc: Mapping[str, Any], workspace: Path) -> DeployConfig:
    """The contract types of a document the schema and the cross-field checks accepted."""
    d = doc["deployment_config"]
    local = d.get("local")
    settings = registry.descriptor(d["platform"]).settings
    deployment = DeploymentConfig(
        strategy=cast(Strategy, d["strategy"]),
        platform=str(d["platform"]),
        do_app_id=d.get("do_app_id"),
        do_region=d.get("do_region"),
        do_component=d.get("do_component"),
        do_deploy_timeout_seconds=float(d["do_deploy_timeout_seconds"]) if "do_deploy_timeout_seconds" in d else None,
        do_project_id=d.get("do_project_id"),
        do_print_build_logs=bool(d.get("do_print_build_logs", False)),
        do_print_deploy_logs=bool(d.get("do_print_deploy_logs", False)),
        k8s_namespace=d.get("k8s_namespace"),
        k8s_deployment=d.get("k8s_deployment"),
        k8s_progress_deadline_seconds=d.get("k8s_progress_deadline_seconds"),
        k8s_public_url=d.get("k8s_public_url"),
        k8s_container=d.get("k8s_container"),
        k8s_context=d.get("k8s_context"),
        local=(
            LocalConfig(
                command=tuple(local["command"]),
                listen=local.get("listen", "127.0.0.1:8080"),
                state_dir=Path(local.get("state_dir", ".deploy-orchestrator/local")),
                cwd=Path(local["cwd"]) if "cwd" in local else None,
                source=Path(local["source"]) if "source" in local else None,
                env=tuple(sorted(local.get("env", {}).items())),
                replicas=local.get("replicas", 1),
                drain_seconds=float(local.get("drain_seconds", 10)),
                startup_timeout_seconds=float(local.get("startup_timeout_seconds", 30)),
                proxy=local.get("proxy", "python"),
                max_connections=int(local.get("max_connections", 10_000)),
            )
            if local
            else None
        ),
        canary_steps=tuple(
            CanaryStep(s["weight"], float(s.get("pause_seconds", 0)), s.get("analysis", True))
            for s in (d.get("canary") or {}).get("steps", [{"weight": 100}])
        ),
        **canary_options(d.get("canary") or {}),
        rolling=RollingConfig(**(d.get("rolling") or {})),
        settings=settings(d, workspace) if settings is not None else None,
    )
    a = doc["artifacts"]
    h = doc["health_check"]
    r = doc["rollback_config"]
    ab = doc["agentbench_config"]
    c = doc["credentials"]
    m = doc.get("migrations") or {}
    lint = m.get("lint") or {}
    n = doc.get("notifications") or {}
    mx = doc.get("metrics") or {}
    return DeployConfig(
        deployment=deployment,
        artifacts=Artifacts(
            odoo_modules=tuple(Path(p) for p in a.get("odoo_modules", [])),
            migrations=tuple(Path(p) for p in a.get("migrations", [])),
            docker_image=a.get("docker_image"),
            app_spec=Path(a["app_spec"]) if "app_spec" in a else None,
        ),
        health_check=HealthCheckConfig(
            endpoint=h["endpoint"],
            expected_status=h["expected_status"],
            timeout_seconds=float(h["timeout_seconds"]),
            retries=h["retries"],
            interval_seconds=float(h["interval_seconds"]),
        ),
        rollback=RollbackConfig(
            auto_rollback_on_failure=r["auto_rollback_on_failure"],
            keep_previous_versions=r["keep_previous_versions"],
            max_rollback_duration_seconds=float(r["max_rollback_duration_seconds"]),
        ),
        agentbench=AgentbenchConfig(
            url=ab["url"],
            token_env_var=ab["token_env_var"],
            emit_dpo_on_failure=ab["emit_dpo_on_failure"],
            timeout_seconds=float(ab.get("timeout_seconds", 10)),
        ),
        credentials=Credentials(
            do_api_token_env_var=c["do_api_token_env_var"],
            db_connection_env_var=c["db_connection_env_var"],
            k8s_kubeconfig_env_var=c.get("k8s_kubeconfig_env_var"),
            ssh_private_key_env_var=c.get("ssh_private_key_env_var"),
            ssh_known_hosts_env_var=c.get("ssh_known_hosts_env_var"),
        ),
        validation_run_id=doc.get("validation_run_id"),
        environment=doc.get("environment", "production"),
        gates=GatesConfig(**_floats(doc.get("gates") or {}, "max_age_hours", "timeout_seconds")),
        migrations=MigrationsConfig(
            history_schema=m.get("history_schema", "deploy_orchestrator"),
            lock_wait_seconds=float(m.get("lock_wait_seconds", 60)),
            lock_timeout_seconds=float(m.get("lock_timeout_seconds", 5)),
            out_of_order=m.get("out_of_order", False),
            irreversible=frozenset(m.get("irreversible", [])),
            lint_enabled=lint.get("enabled", True),
            lint_acknowledge=tuple(sorted((k, frozenset(v)) for k, v in lint.get("acknowledge", {}).items())),
        ),
        verification=_verification(doc.get("verification") or {}),
        odoo=_odoo(doc.get("odoo") or {}),
        ledger=LedgerConfig(**(doc.get("ledger") or {})),
        metrics=MetricsConfig(
            pushgateway_url=mx.get("pushgateway_url"),
            job=mx.get("job", "deploy-orchestrator"),
            textfile=Path(mx.get("textfile", ".deploy-orchestrator/metrics.prom")),
        ),
        deploy_lock=DeployLockConfig(**_floats(doc.get("deploy_lock") or {}, "wait_seconds")),
        notifications=NotificationsConfig(
            webhook_url_env_var=n.get("webhook_url_env_var"),
            on=frozenset(n.get("on", ["success", "failed", "rolled_back"])),
            paging_url=n.get("paging_url"),
            paging_routing_key_env_var=n.get("paging_routing_key_env_var"),
            timeout_seconds=float(n.get("timeout_seconds", 10)),
        ),
    )


def _floats(section: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: (float(v) if k in keys else v) for k, v in section.items()}


def _verification(v: Mapping[str, Any]) -> VerificationConfig:
    db = v.get("database")
    return VerificationConfig(
        deadline_seconds=float(v.get("deadline_seconds", 60)),
        retries=v.get("retries", 1),
        interval_seconds=float(v.get("interval_seconds", 1)),
        consecutive_failures=v.get("consecutive_failures", 1),
        before_switch=v.get("before_switch", False),
        database=DatabaseCheck(**_floats(db, "max_latency_ms", "timeout_seconds")) if db is not None else None,
        critical_endpoints=tuple(
            HttpCheck(
                name=e.get("name") or e.get("path") or e["url"], **_floats(_without(e, "name"), "timeout_seconds")
            )
            for e in v.get("critical_endpoints", [])
        ),
        background_jobs=tuple(
            JobCheck(**_floats(j, "max_age_seconds", "timeout_seconds")) for j in v.get("background_jobs", [])
        ),
        metrics=tuple(MetricCheck(**_floats(mc, "timeout_seconds")) for mc in v.get("metrics", [])),
    )


def _odoo(o: Mapping[str, Any]) -> OdooConfig:
    fields = _floats(o, "timeout_seconds")
    if "upgrade_command" in fields:
        fields["upgrade_command"] = tuple(fields["upgrade_command"])
    return OdooConfig(**fields)


def _without(mapping: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in keys}
