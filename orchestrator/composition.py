"""The run's collaborators, built once from the validated request and the environment.

The CLI composes them (`compose`) and hands them to the pipeline, which builds none of its own:
this is the one place the run's database secrets become `Secret`s (the application's DSN, the
ledger's) and the one place an external system is chosen for the run (the ledger, the verdict
source, GitHub, the notifier, the metrics, the canary's meter, the migration sessions). What is
opened lazily stays lazy: a verdict source or a webhook secret the config names but the
environment lacks is still a ConfigError at the step that needs it, recorded like any other failure."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from orchestrator import gates, metrics, notify
from orchestrator.canary.prometheus import PrometheusMeter
from orchestrator.canary.webhooks import PhaseHooks
from orchestrator.contract import MigrationsConfig, Request, Result
from orchestrator.errors import MigrationError
from orchestrator.github import GitHubClient
from orchestrator.github_updates import GitHubUpdates
from orchestrator.hardening.loop import Hardening
from orchestrator.health.release_checks import ReleaseChecks
from orchestrator.ledger import open_ledger
from orchestrator.ledger.recorder import Ledger
from orchestrator.migrations.runner import MigrationRunner
from orchestrator.migrations.scripts import MigrationScript
from orchestrator.platforms.traffic import TrafficMeter
from orchestrator.redaction import Secret
from orchestrator.runlog import RunLog

__all__ = ["Collaborators", "MigrationSessions", "compose"]

DEFAULT_ACTOR = "deploy-orchestrator"


@dataclass(frozen=True, slots=True)
class MigrationSessions:
    """Opens this run's migration runner on the application database (`migrations/runner.py`)."""

    dsn: Secret | None
    dsn_env_var: str
    config: MigrationsConfig
    deployment_id: str
    installed_by: str

    @contextmanager
    def session(self, scripts: Sequence[MigrationScript], *, read_only: bool) -> Iterator[MigrationRunner | None]:
        """A runner holding the migration lock for the block, or None when there are no migrations.
        Raises MigrationError when there are some but no DSN to run them on."""
        if not scripts:
            yield None
            return
        if self.dsn is None:
            raise MigrationError(
                f"migrations are listed but ${self.dsn_env_var} is not set; "
                "export the database DSN under that name (credentials.db_connection_env_var)"
            )
        runner = MigrationRunner(
            self.dsn,
            self.config,
            deployment_id=self.deployment_id,
            installed_by=self.installed_by,
            read_only=read_only,
        )
        with runner:
            yield runner


@dataclass(frozen=True, slots=True)
class Collaborators:
    """Everything a run talks to, besides the platform (which the CLI builds for the run's target)."""

    deployment_id: str
    log: RunLog
    env: Mapping[str, str]
    """The run's environment, for the steps that read the variables the config names (artifact
    digests, the Odoo upgrade, webhook secrets, GitHub's event facts)."""
    dsn: Secret | None
    """The application database (credentials.db_connection_env_var)."""
    ledger_dsn: Secret | None
    """The ledger's database (ledger.dsn_env_var), else the application's: also the deploy lock's."""
    ledger: Ledger | None
    checks: ReleaseChecks
    hardening: Hardening
    github: GitHubUpdates
    notifier: notify.Notifier
    record_metrics: Callable[[Result], object]
    """The run's metrics: the node-exporter text file, and the Pushgateway when configured (`metrics.py`)."""
    migrations: MigrationSessions
    meter: TrafficMeter | None
    """Where a canary's counters come from when not from the platform's own data plane."""
    verdicts: Callable[[], gates.VerdictSource]
    """Opens the verdict source `gates` names for one check (its reads share a session that ends with
    it); ConfigError when its setting is missing."""
    phase_hooks: Callable[[], PhaseHooks]
    """The canary's phase webhooks, built when a deploy starts (ConfigError for a secret they name that is unset)."""
    run_url: str | None
    actor: str
    """Who the migration history records as having installed a migration."""


def compose(
    request: Request, env: Mapping[str, str], log: RunLog, *, deployment_id: str | None = None
) -> Collaborators:
    """The collaborators of one run. Opens no connection: each is made when first used."""
    config = request.config
    deployment_id = deployment_id or str(uuid.uuid4())
    dsn = _secret(env, config.credentials.db_connection_env_var)
    ledger_dsn = _secret(env, config.ledger.dsn_env_var) or dsn
    schema = config.ledger.schema
    actor = env.get("GITHUB_ACTOR") or DEFAULT_ACTOR
    hook_context = {"deployment_id": deployment_id, "repository": env.get("GITHUB_REPOSITORY")}
    canary_prometheus = config.deployment.canary_prometheus
    return Collaborators(
        deployment_id=deployment_id,
        log=log,
        env=env,
        dsn=dsn,
        ledger_dsn=ledger_dsn,
        ledger=open_ledger(ledger_dsn, config.ledger, log, schema=schema) if config.ledger.enabled else None,
        checks=ReleaseChecks(config, dsn=dsn),
        hardening=Hardening(config, ledger_dsn, request.inputs.workspace, env, log, schema=schema),
        github=GitHubUpdates(GitHubClient.from_env(env, request.inputs.github_token, log_to=log), log),
        notifier=notify.Notifier(config.notifications, env, log=log),
        record_metrics=partial(
            metrics.record_run,
            config=config.metrics,
            workspace=request.inputs.workspace,
            environment=config.environment,
            log=log,
        ),
        migrations=MigrationSessions(
            dsn,
            config.credentials.db_connection_env_var,
            config.migrations,
            deployment_id=deployment_id,
            installed_by=actor,
        ),
        meter=PrometheusMeter(canary_prometheus) if canary_prometheus is not None else None,
        verdicts=partial(gates.open_source, config, env),
        phase_hooks=partial(PhaseHooks, config.deployment.canary_webhooks, env, log, context=hook_context),
        run_url=notify.run_url(env),
        actor=actor,
    )


def _secret(env: Mapping[str, str], name: str | None) -> Secret | None:
    value = env.get(name) if name else None
    return Secret(value, name or "secret") if value else None
