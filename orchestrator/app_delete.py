"""mode delete: remove an app by id or name, as app_action's delete does (platform digitalocean).

Idempotent: deleting an app that is already gone is an error only when asked (`ignore-not-found`
false, the default, as in app_action): exit 2 names the app and the input that avoids it. Nothing
is gated, since nothing is deployed, and production's own app is never deleted this way. The app
found is recorded before the DELETE (`record`), so a run that dies mid-delete is finished by the
next run (recovery/deletes.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.contract import RunInputs
from orchestrator.errors import ConfigError
from orchestrator.platforms.base import DeletedApp, DeletesApps
from orchestrator.recovery import crash_points
from orchestrator.runlog import RunLog

__all__ = ["DeleteOutcome", "run_delete"]


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    asked: str
    """The app as the inputs named it (`id <uuid>` or `name <name>`)."""
    deleted: bool
    app_id: str | None = None
    app_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"app": self.asked, "deleted": self.deleted, "app_id": self.app_id, "app_name": self.app_name}


def run_delete(
    platform: object, inputs: RunInputs, platform_name: str, log: RunLog, *, record: Callable[[DeletedApp], None]
) -> DeleteOutcome:
    """Delete the app `inputs` name, `record`ing it once found (whatever `record` raises, nothing is
    deleted). Raises ConfigError (exit 2, nothing touched) for a platform without deletable apps,
    and for an app that does not exist unless `ignore_not_found`."""
    if not isinstance(platform, DeletesApps):
        raise ConfigError(
            f"mode: delete removes an App Platform app (platform digitalocean), not a {platform_name} target; "
            "use mode preview-teardown to remove a pull request's preview"
        )
    asked = f"id {inputs.app_id}" if inputs.app_id is not None else f"name {inputs.app_name}"

    def found(app: DeletedApp) -> None:
        record(app)
        crash_points.reach("before-delete")

    deleted = platform.delete_app(inputs.app_id, inputs.app_name, before_delete=found)
    crash_points.reach("after-delete")
    if deleted is None:
        if not inputs.ignore_not_found:
            field = "app-id" if inputs.app_id is not None else "app-name"
            raise ConfigError(
                f"{field}: there is no app with {asked}; check the value, or set ignore-not-found: true "
                "to treat an app that is already gone as done"
            )
        log.info(f"delete: there is no app with {asked}; nothing to do (ignore-not-found)")
        return DeleteOutcome(asked, deleted=False)
    log.info(f"delete: app {deleted.name} ({deleted.id}) deleted")
    return DeleteOutcome(asked, deleted=True, app_id=deleted.id, app_name=deleted.name)
