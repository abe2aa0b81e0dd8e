"""`DeployConfig`, the whole validated config file (input contract), and its smaller blocks.

`config.py` is the only producer of these types; nothing after it sees raw dicts. The
deployment target and the health checks have modules of their own (`deployment`, `verification`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from orchestrator.contract.deployment import DeploymentConfig
from orchestrator.contract.verification import HealthCheckConfig, VerificationConfig

__all__ = [
    "AgentbenchConfig",
    "Artifacts",
    "Credentials",
    "DeployConfig",
    "DeployLockConfig",
    "GatesConfig",
    "LedgerConfig",
    "MetricsConfig",
    "MigrationsConfig",
    "NotificationsConfig",
    "OdooConfig",
    "RollbackConfig",
]


@dataclass(frozen=True, slots=True)
class Artifacts:
    odoo_modules: tuple[Path, ...]
    migrations: tuple[Path, ...]
    docker_image: str | None = None
    app_spec: Path | None = None
    """An App Platform app spec in the repository (app_action's `.do/app.yaml`), relative to the workspace."""


@dataclass(frozen=True, slots=True)
class RollbackConfig:
    auto_rollback_on_failure: bool
    keep_previous_versions: int
    max_rollback_duration_seconds: float


@dataclass(frozen=True, slots=True)
class AgentbenchConfig:
    url: str
    token_env_var: str
    emit_dpo_on_failure: bool
    timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class Credentials:
    do_api_token_env_var: str
    db_connection_env_var: str
    k8s_kubeconfig_env_var: str | None = None
    ssh_private_key_env_var: str | None = None
    """The `hosts` platform's SSH private key (OpenSSH or PEM text), a secret."""
    ssh_known_hosts_env_var: str | None = None
    """known_hosts lines pinning the hosts' keys."""


@dataclass(frozen=True, slots=True)
class GatesConfig:
    source: Literal["database", "http"] = "database"
    url: str | None = None
    token_env_var: str | None = None
    dsn_env_var: str | None = None
    max_age_hours: float = 168.0
    timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class MigrationsConfig:
    history_schema: str = "deploy_orchestrator"
    lock_wait_seconds: float = 60.0
    lock_timeout_seconds: float = 5.0
    out_of_order: bool = False
    irreversible: frozenset[str] = frozenset()
    lint_enabled: bool = True
    lint_acknowledge: tuple[tuple[str, frozenset[str]], ...] = ()

    def acknowledged(self, filename: str) -> frozenset[str]:
        return dict(self.lint_acknowledge).get(filename, frozenset())


@dataclass(frozen=True, slots=True)
class OdooConfig:
    upgrade_command: tuple[str, ...] | None = None
    xmlrpc_url: str | None = None
    database: str | None = None
    username: str | None = None
    password_env_var: str | None = None
    timeout_seconds: float = 600.0


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    dsn_env_var: str | None = None
    enabled: bool = True
    schema: str = "public"


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    pushgateway_url: str | None = None
    job: str = "deploy-orchestrator"
    textfile: Path = Path(".deploy-orchestrator/metrics.prom")


@dataclass(frozen=True, slots=True)
class NotificationsConfig:
    webhook_url_env_var: str | None = None
    on: frozenset[str] = frozenset({"success", "failed", "rolled_back"})
    paging_url: str | None = None
    paging_routing_key_env_var: str | None = None
    timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class DeployLockConfig:
    wait_seconds: float = 120.0


@dataclass(frozen=True, slots=True)
class DeployConfig:
    """The whole validated config: the seed's DeploymentOrchestratorInput plus extensions."""

    deployment: DeploymentConfig
    artifacts: Artifacts
    health_check: HealthCheckConfig
    rollback: RollbackConfig
    agentbench: AgentbenchConfig
    credentials: Credentials
    validation_run_id: str | None = None
    environment: str = "production"
    gates: GatesConfig = GatesConfig()
    migrations: MigrationsConfig = MigrationsConfig()
    verification: VerificationConfig = field(default_factory=VerificationConfig)
    odoo: OdooConfig = OdooConfig()
    ledger: LedgerConfig = LedgerConfig()
    metrics: MetricsConfig = MetricsConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    deploy_lock: DeployLockConfig = DeployLockConfig()

    def secret_env_vars(self) -> tuple[str, ...]:
        """Every environment variable the config names as holding a secret."""
        names = (
            self.agentbench.token_env_var,
            self.credentials.do_api_token_env_var,
            self.credentials.db_connection_env_var,
            self.credentials.k8s_kubeconfig_env_var,
            self.credentials.ssh_private_key_env_var,
            self.gates.token_env_var,
            self.gates.dsn_env_var,
            self.ledger.dsn_env_var,
            self.odoo.password_env_var,
            self.notifications.webhook_url_env_var,
            self.notifications.paging_routing_key_env_var,
        )
        return tuple(n for n in names if n)
