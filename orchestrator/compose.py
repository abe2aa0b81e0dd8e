"""The run's collaborators, built once from the request and the environment (secrets resolved once).

The CLI builds the platform for the run's target (through the registry) and everything else here,
then hands the lot to the pipeline, which only uses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator import ledger, notify
from orchestrator.contract import DeployConfig, Request
from orchestrator.github import GitHubClient
from orchestrator.github_updates import GitHubUpdates
from orchestrator.hardening.loop import Hardening
from orchestrator.health.release_checks import ReleaseChecks
from orchestrator.platforms import registry
from orchestrator.platforms.base import Platform
from orchestrator.platforms.registry import PlatformDescriptor, Target
from orchestrator.redaction import Secret
from orchestrator.runlog import RunLog

__all__ = ["Collaborators", "Secrets", "assemble"]


@dataclass(frozen=True, slots=True)
class Secrets:
    """The secrets the pipeline itself uses (adapters read their own credentials in their factory)."""

    dsn: Secret | None
    """The application database (migrations, database checks)."""
    ledger_dsn: Secret | None
    """The ledger's database: `ledger.dsn_env_var`, else the application's."""

    @classmethod
    def resolve(cls, config: DeployConfig, env: Mapping[str, str]) -> Secrets:
        dsn = _secret(env, config.credentials.db_connection_env_var)
        return cls(dsn=dsn, ledger_dsn=_secret(env, config.ledger.dsn_env_var) or dsn)


@dataclass(frozen=True, slots=True)
class Collaborators:
    platform: Platform
    target: Target
    """What `platform` was built for: production, or the pull request's preview."""
    descriptor: PlatformDescriptor
    secrets: Secrets
    checks: ReleaseChecks
    ledger: ledger.Ledger | None
    hardening: Hardening
    github: GitHubUpdates
    run_url: str | None
    env: Mapping[str, str]


def assemble(
    request: Request, platform: Platform, target: Target, env: Mapping[str, str], log: RunLog
) -> Collaborators:
    """Everything one run talks to. Opens the ledger (when enabled); touches nothing else."""
    config = request.config
    secrets = Secrets.resolve(config, env)
    schema = config.ledger.schema
    opened = (
        ledger.open_ledger(secrets.ledger_dsn, config.ledger, log, schema=schema) if config.ledger.enabled else None
    )
    return Collaborators(
        platform=platform,
        target=target,
        descriptor=registry.descriptor(config.deployment.platform),
        secrets=secrets,
        checks=ReleaseChecks(config, dsn=secrets.dsn),
        ledger=opened,
        hardening=Hardening(config, secrets.ledger_dsn, request.inputs.workspace, env, log, schema=schema),
        github=GitHubUpdates(GitHubClient.from_env(env, request.inputs.github_token, log_to=log), log),
        run_url=notify.run_url(env),
        env=env,
    )


def _secret(env: Mapping[str, str], name: str | None) -> Secret | None:
    value = env.get(name) if name else None
    return Secret(value, name or "secret") if value else None
