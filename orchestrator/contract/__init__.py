"""Frozen dataclasses at the edges: the parsed config (input contract) and the result (output contract).

`config.py` is the only producer of the config types; nothing after it sees raw dicts. The
result types mirror the seed's `DeploymentOrchestratorOutput` field for field and serialise with
`to_dict()` into what `schema/deploy-result.schema.json` validates. Everything is importable from
here; the modules say which part of the contract a type belongs to:

- `deployment`: the platform, the strategy and their settings;
- `verification`: the seed's health check and the checks of post-switch verification;
- `deploy_config`: `DeployConfig`, the whole config file, and its other blocks;
- `request`: one run's validated inputs and config;
- `result`: the output contract.
"""

from orchestrator.contract.deploy_config import (
    AgentbenchConfig,
    Artifacts,
    Credentials,
    DeployConfig,
    DeployLockConfig,
    GatesConfig,
    LedgerConfig,
    MetricsConfig,
    MigrationsConfig,
    NotificationsConfig,
    OdooConfig,
    RollbackConfig,
)
from orchestrator.contract.deployment import (
    STRATEGIES,
    CanaryStep,
    DeploymentConfig,
    LocalConfig,
    PlatformName,
    RollingConfig,
    Strategy,
)
from orchestrator.contract.request import MODES, Mode, Request, RunInputs
from orchestrator.contract.result import (
    DeploymentDetails,
    HardeningOutcome,
    HealthProbe,
    LogEntry,
    LogLevel,
    MigrationProvenance,
    MigrationResult,
    Result,
    RollbackOutcome,
    Status,
)
from orchestrator.contract.verification import (
    DatabaseCheck,
    HealthCheckConfig,
    HttpCheck,
    JobCheck,
    MetricCheck,
    VerificationConfig,
)

__all__ = [
    "MODES",
    "STRATEGIES",
    "AgentbenchConfig",
    "Artifacts",
    "CanaryStep",
    "Credentials",
    "DatabaseCheck",
    "DeployConfig",
    "DeployLockConfig",
    "DeploymentConfig",
    "DeploymentDetails",
    "GatesConfig",
    "HardeningOutcome",
    "HealthCheckConfig",
    "HealthProbe",
    "HttpCheck",
    "JobCheck",
    "LedgerConfig",
    "LocalConfig",
    "LogEntry",
    "LogLevel",
    "MetricCheck",
    "MetricsConfig",
    "MigrationProvenance",
    "MigrationResult",
    "MigrationsConfig",
    "Mode",
    "NotificationsConfig",
    "OdooConfig",
    "PlatformName",
    "Request",
    "Result",
    "RollbackConfig",
    "RollbackOutcome",
    "RollingConfig",
    "RunInputs",
    "Status",
    "Strategy",
    "VerificationConfig",
]
