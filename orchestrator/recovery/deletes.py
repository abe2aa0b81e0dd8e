"""Deletes that died unfinished (mode delete): finished, or reported, by the next run on the platform.

A delete run records which app it is about to delete (its id and name, once found and past the
production check) before it sends the DELETE, and sends nothing if that record fails. The DELETE
is safe to repeat. So a delete that died leaves an `in_progress` row of one of two kinds, and the
next run on this environment and platform (any mode that locks a target) settles it as `crashed`:

- with the app recorded: the delete is finished by that id (the production check runs again, and
  an app created since under the same name is never touched); an app already gone is what the
  dead run's DELETE did;
- without: the run died before it found the app, so it deleted nothing; the row says to run the
  delete again.

A delete that cannot be finished now (the API is down) leaves the row in progress for the run
after, and is reported; it never fails the run that found it, whose own target is another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.ledger.database import LedgerError
from orchestrator.platforms.base import DeletedApp, DeletesApps
from orchestrator.recovery import crashed as rows
from orchestrator.recovery.crashed import CrashedRun
from orchestrator.redaction import Secret
from orchestrator.runlog import RunLog

__all__ = ["FinishedDelete", "finish_deletes", "target_recorder"]

_CHECKPOINT = "deleting"
Outcome = Literal["deleted", "already gone", "nothing deleted", "refused", "left"]


@dataclass(frozen=True, slots=True)
class FinishedDelete:
    """What became of one delete that died unfinished."""

    deployment_id: str
    outcome: Outcome
    """`left`: not settled, the next run tries again; every other outcome settled the row."""
    note: str
    app_id: str | None = None
    app_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment_id": self.deployment_id,
            "outcome": self.outcome,
            "note": self.note,
            "app_id": self.app_id,
            "app_name": self.app_name,
        }


def target_recorder(dsn: Secret | None, deployment_id: str, *, schema: str) -> Callable[[DeletedApp], None]:
    """The `before_delete` of a delete run: checkpoint the app found on the run's row. Raises
    LedgerError (nothing deleted) when the row cannot take it. Without a ledger, records nothing:
    there is then no row a recovery could find either."""

    def record(app: DeletedApp) -> None:
        if dsn is None:
            return
        try:
            rows.require(dsn, deployment_id, schema=schema, facts={_CHECKPOINT: {"id": app.id, "name": app.name}})
        except LedgerError as exc:
            raise LedgerError(
                f"delete: app {app.name} ({app.id}) was not deleted: recording which app this run deletes, so that "
                f"a recovery could finish it should the run die, failed ({exc}); run the delete again"
            ) from None

    return record


def finish_deletes(
    dsn: Secret,
    *,
    schema: str,
    environment: str,
    platform_name: str,
    platform: object,
    deployment_id: str,
    log: RunLog,
) -> tuple[FinishedDelete, ...]:
    """Finish or report every delete on this environment and platform whose run died. Never raises."""
    try:
        found = rows.find_crashed(
            dsn,
            schema=schema,
            environment=environment,
            platform=platform_name,
            exclude=deployment_id,
            modes=("delete",),
        )
    except LedgerError as exc:
        log.warn(f"recovery: could not look for deletes that died unfinished ({exc}); a later run will")
        return ()
    done: list[FinishedDelete] = []
    for run in found:
        finished = _finish(run, platform)
        if finished is None:
            continue  # this target cannot delete apps (a preview's); a production run of the platform will
        if finished.outcome != "left":
            error = (
                f"the run's process died during step '{run.current_step}'; {finished.note} "
                f"(settled by deployment {deployment_id})"
            )
            try:
                rows.settle(dsn, run, schema=schema, recovery={"delete": finished.to_dict()}, error=error)
            except LedgerError as exc:
                finished = FinishedDelete(
                    run.deployment_id, "left", f"{finished.note}; settling its row failed ({exc})", *_app(finished)
                )
        quiet = finished.outcome in ("deleted", "already gone")
        (log.info if quiet else log.warn)(f"recovery: the delete {run.deployment_id} died unfinished: {finished.note}")
        done.append(finished)
    return tuple(done)


def _app(finished: FinishedDelete) -> tuple[str | None, str | None]:
    return finished.app_id, finished.app_name


def _finish(run: CrashedRun, platform: object) -> FinishedDelete | None:
    target = run.artifact_digests.get(_CHECKPOINT)
    if not isinstance(target, Mapping) or not target.get("id"):
        return FinishedDelete(
            run.deployment_id,
            "nothing deleted",
            "it died before it had found the app to delete, so it deleted nothing; run the delete again",
        )
    if not isinstance(platform, DeletesApps):
        return None
    app_id, name = str(target["id"]), str(target.get("name") or "")
    what = f"app {name} ({app_id})"
    try:
        gone = platform.delete_app(app_id, None)
    except ConfigError as exc:
        return FinishedDelete(run.deployment_id, "refused", f"{what} was not deleted: {exc}", app_id, name)
    except OrchestratorError as exc:
        note = f"finishing the delete of {what} failed ({exc}); the next run tries again"
        return FinishedDelete(run.deployment_id, "left", note, app_id, name)
    if gone is None:
        note = f"{what} is gone (its DELETE went through)"
        return FinishedDelete(run.deployment_id, "already gone", note, app_id, name)
    return FinishedDelete(run.deployment_id, "deleted", f"{what} deleted now, finishing it", app_id, name)
