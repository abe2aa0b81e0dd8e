"""mode rollback and mode recover: back to a verified good release on purpose.

A manual rollback goes to the release `rollback-to` names (or the newest good one), past every
deploy since it (`rollback/manual.py` decides what to undo, then does it); recover only settles
the runs on the target that died (the recovery every lock on production runs first) and says what serves.
"""

from __future__ import annotations

from orchestrator import good_releases
from orchestrator.rollback import manual
from orchestrator.run_state import NO_VERSION
from orchestrator.run_steps import RunSteps

__all__ = ["manual_rollback", "recover"]


def manual_rollback(steps: RunSteps) -> None:
    state, platform, config = steps.state, steps.platform, steps.config
    steps.lock(steps.production_key())
    releases = platform.releases()
    live = platform.live()
    state.previous = live
    target = good_releases.rollback_target(steps.inputs.rollback_to, releases, live, steps.judgement())
    state.released = target.version
    steps.checkpoint(release=target.version, previous=live.version if live else NO_VERSION)
    steps.at("rollback")
    steps.log.info(f"manual rollback from {live.version if live else NO_VERSION} to {target.version}")
    scripts = steps.migration_scripts()
    budget = config.rollback.max_rollback_duration_seconds
    with steps.parts.migrations.session(scripts, read_only=False) as runner:
        plan = manual.plan_manual_rollback(
            target,
            runner=runner,
            scripts=scripts,
            history=steps.parts.ledger,
            environment=config.environment,
            undo_provenance=steps.undo_provenance,
            log=steps.log,
        )
        report = manual.roll_back_to(
            plan, runner, platform=platform, checks=steps.parts.checks, budget_seconds=budget, log=steps.log
        )
    state.probes.extend(p.during("rollback re-check", target.version) for p in report.probes)
    state.migrations.extend(report.undone)
    state.rollback = report.outcome
    if report.error is not None:
        raise report.error
    steps.at("verified")
    state.succeeded("rolled_back")


def recover(steps: RunSteps) -> None:
    """Only the recovery (run by the lock on production), then say what serves."""
    steps.lock(steps.production_key())
    live = steps.platform.live()
    steps.state.previous = live
    steps.state.released = live.version if live else NO_VERSION
    if "recovery" not in steps.state.extras:
        steps.log.info("recover: no run on this target died before finishing; nothing to do")
    steps.state.succeeded()
