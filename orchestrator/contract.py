"""Frozen dataclasses at the edges: the parsed config (input contract) and the result (output contract).

`config.py` is the only producer of the config types; nothing after it sees raw dicts.
The result types mirror the seed's `DeploymentOrchestratorOutput` field for field and
serialise with `to_dict()` into what `schema/deploy-result.schema.json` validates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from orchestrator.redaction import Secret

Strategy = Literal["blue_green", "canary", "rolling"]
PlatformName = Literal["local", "digitalocean", "kubernetes"]
Mode = Literal["deploy", "plan", "rollback", "preview", "preview-teardown", "recover"]
Status = Literal["success", "failed", "rolled_back"]
LogLevel = Literal["info", "warn", "error"]

STRATEGIES: tuple[str, ...] = ("blue_green", "canary", "rolling")
PLATFORMS: tuple[str, ...] = ("local", "digitalocean", "kubernetes")
MODES: tuple[str, ...] = ("deploy", "plan", "rollback", "preview", "preview-teardown", "recover")


# --- the config (input contract) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalConfig:
    command: tuple[str, ...]
    listen: str = "127.0.0.1:8080"
    state_dir: Path = Path(".deploy-orchestrator/local")
    cwd: Path | None = None
    source: Path | None = None
    """The release's files (default: the workspace); captured into the state dir at deploy."""
    env: tuple[tuple[str, str], ...] = ()
    replicas: int = 1
    drain_seconds: float = 10.0
    startup_timeout_seconds: float = 30.0
    proxy: str = "python"
    """The data plane on `listen`: "python" (ours) or "haproxy" (driven through its runtime API)."""
    max_connections: int = 10_000


@dataclass(frozen=True, slots=True)
class CanaryStep:
    weight: int
    pause_seconds: float = 0.0
    analysis: bool = True


@dataclass(frozen=True, slots=True)
class RollingConfig:
    max_unavailable: int = 0
    pause_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    strategy: Strategy
    platform: PlatformName
    do_app_id: str | None = None
    do_region: str | None = None
    do_component: str | None = None
    do_deploy_timeout_seconds: float | None = None
    do_project_id: str | None = None
    do_print_build_logs: bool = False
    do_print_deploy_logs: bool = False
    k8s_namespace: str | None = None
    k8s_deployment: str | None = None
    k8s_progress_deadline_seconds: int | None = None
    k8s_public_url: str | None = None
    k8s_container: str | None = None
    k8s_context: str | None = None
    local: LocalConfig | None = None
    canary_steps: tuple[CanaryStep, ...] = (CanaryStep(weight=100),)
    rolling: RollingConfig = RollingConfig()


@dataclass(frozen=True, slots=True)
class Artifacts:
    odoo_modules: tuple[Path, ...]
    migrations: tuple[Path, ...]
    docker_image: str | None = None
    app_spec: Path | None = None
    """An App Platform app spec in the repository (app_action's `.do/app.yaml`), relative to the workspace."""


@dataclass(frozen=True, slots=True)
class HealthCheckConfig:
    endpoint: str
    expected_status: int
    timeout_seconds: float
    retries: int
    interval_seconds: float


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
class HttpCheck:
    name: str
    path: str | None = None
    url: str | None = None
    method: str = "GET"
    expected_status: int = 200
    body_contains: str | None = None
    max_latency_ms: float | None = None
    timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class DatabaseCheck:
    query: str | None = None
    max_latency_ms: float = 1000.0
    timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class JobCheck:
    name: str
    max_age_seconds: float
    url: str | None = None
    path: str | None = None
    sql: str | None = None
    timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class MetricCheck:
    name: str
    prometheus_url: str | None = None
    query: str | None = None
    scrape_path: str | None = None
    series: str | None = None
    min: float | None = None
    max: float | None = None
    timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class VerificationConfig:
    deadline_seconds: float = 60.0
    retries: int = 1
    interval_seconds: float = 1.0
    consecutive_failures: int = 1
    before_switch: bool = False
    database: DatabaseCheck | None = None
    critical_endpoints: tuple[HttpCheck, ...] = ()
    background_jobs: tuple[JobCheck, ...] = ()
    metrics: tuple[MetricCheck, ...] = ()


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
    verification: VerificationConfig = VerificationConfig()
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
            self.gates.token_env_var,
            self.gates.dsn_env_var,
            self.ledger.dsn_env_var,
            self.odoo.password_env_var,
            self.notifications.webhook_url_env_var,
            self.notifications.paging_routing_key_env_var,
        )
        return tuple(n for n in names if n)


@dataclass(frozen=True, slots=True)
class RunInputs:
    """The Action inputs (or CLI flags) after validation. Paths are absolute."""

    mode: Mode
    workspace: Path
    config_path: Path
    validation_run_id: str | None
    version: str
    image: str | None = None
    rollback_to: str | None = None
    pr_number: int | None = None
    github_token: Secret | None = None
    repository: str | None = None
    """owner/name, from GITHUB_REPOSITORY."""


@dataclass(frozen=True, slots=True)
class Request:
    """One run's complete, validated request: inputs plus config."""

    inputs: RunInputs
    config: DeployConfig

    @property
    def validation_run_id(self) -> str | None:
        return self.inputs.validation_run_id or self.config.validation_run_id


# --- the result (output contract) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HealthProbe:
    endpoint: str
    status_code: int
    response_time_ms: float
    passed: bool
    timestamp: str
    detail: str | None = None
    release: str | None = None
    """The release this probe checked (a canary step's public route: the new release's label)."""
    phase: str | None = None
    """When in the run: `pre-switch`, `canary 10%`, `verification`, `rollback re-check`, `preview`."""

    def during(self, phase: str, release: str | None) -> HealthProbe:
        """This probe labelled with where in the run it was taken (labels already set are kept)."""
        return dataclasses.replace(self, phase=self.phase or phase, release=self.release or release)


@dataclass(frozen=True, slots=True)
class MigrationProvenance:
    """Who produced a migration file: the SQLAgent's record that vouches for exactly its sha256."""

    sha256: str
    sqlagent_run_id: str
    agent_id: str
    recorded_at: str
    record_id: str


@dataclass(frozen=True, slots=True)
class MigrationResult:
    version: str
    filename: str
    duration_ms: float
    success: bool
    direction: Literal["up", "down"] = "up"
    error: str | None = None
    provenance: MigrationProvenance | None = None
    """An additive field: the SQLAgent record of the file that ran (the V file up, the U file down)."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    level: LogLevel
    message: str
    timestamp: str


@dataclass(frozen=True, slots=True)
class DeploymentDetails:
    strategy: str
    platform: str
    previous_version: str
    new_version: str
    duration_seconds: float


@dataclass(frozen=True, slots=True)
class RollbackOutcome:
    triggered: bool
    reason: str | None = None
    previous_version: str | None = None
    duration_seconds: float | None = None
    succeeded: bool | None = None


@dataclass(frozen=True, slots=True)
class HardeningOutcome:
    dpo_pairs_generated: int = 0
    agentbench_submission_id: str | None = None
    delivered: int = 0
    queued: int = 0
    fallback_file: str | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """The seed's DeploymentOrchestratorOutput plus our additive top-level fields."""

    deployment_id: str
    validation_run_id: str
    deployed_at: str
    status: Status
    deployment_details: DeploymentDetails
    health_checks: tuple[HealthProbe, ...]
    migrations_applied: tuple[MigrationResult, ...]
    rollback: RollbackOutcome
    hardening: HardeningOutcome
    logs: tuple[LogEntry, ...]
    mode: str = "deploy"
    url: str | None = None
    exit_code: int = 0
    error: str | None = None
    failed_step: str | None = None
    extras: tuple[tuple[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _strip_none(dataclasses.asdict(self))
        data.pop("extras", None)
        for key, value in self.extras:
            data[key] = value
        return data


def _strip_none(value: Any) -> Any:
    """Drop None-valued keys so optional seed fields are absent rather than null."""
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_strip_none(v) for v in value]
    return value
