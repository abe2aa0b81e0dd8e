"""DigitalOcean App Platform as a `Platform`: App Platform cuts over by itself.

`start` writes the new image, version label and health check into the app spec; App Platform
builds a deployment, keeps the old release serving until the new one passes that health check,
then switches. We wait for the outcome with backoff under a deadline. Rollback uses App Platform's
own rollback API, which pins the app until we commit (verification passed) or revert.

Nothing is ever stopped here (no `Retirement`): App Platform replaces instances itself, and a
deployment that failed never received traffic. A pull request's preview is another app, deployed by
`preview_target.DigitalOceanPreview` on top of this adapter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from orchestrator.app_spec import FilledSpec
from orchestrator.artifacts import ArtifactDigests
from orchestrator.contract import DeploymentConfig, HealthCheckConfig
from orchestrator.errors import ConfigError, DeployError
from orchestrator.platform_outputs import PlatformOutputs
from orchestrator.platforms.base import DeletedApp, Release
from orchestrator.redaction import Secret

from .api import PLATFORM, AppsApi, RetryPolicy
from .component_health import require_healthy_components
from .deletion import delete_named_app
from .deployments import deployment_release, failure, kept_releases
from .first_deploy import create_from_spec
from .image import ImageSource, parse_image
from .logs import DeploymentLogs, fetch_logs, outputs_of
from .pinning import Pinning, refuse_if_pinned
from .previews import find_app
from .region import check_region
from .source_commit import BuiltOtherCommit, git_built, other_commit, undo_other_commit
from .spec import (
    commits_of,
    images_of,
    select_component,
    serves_http,
    version_of,
    with_component_images,
    with_release,
)
from .spec_file import refuse_unapproved, with_sealed_values
from .spec_update import unfinished, update_spec
from .watch import Backoff, wait_for_deployment

__all__ = ["DEFAULT_DEADLINE_SECONDS", "DEFAULT_ENDPOINT", "DigitalOceanPlatform"]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://api.digitalocean.com"
DEFAULT_DEADLINE_SECONDS = 15 * 60.0
_RECENT = 50
_BACKOFF = Backoff()
_RETRY = RetryPolicy()


class DigitalOceanPlatform:
    """One App Platform app (`deployment_config.do_app_id`), driven through pydo."""

    name = "digitalocean"

    def __init__(
        self,
        deployment: DeploymentConfig,
        health: HealthCheckConfig,
        token: Secret,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        verify: str | bool = True,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        backoff: Backoff = _BACKOFF,
        retry: RetryPolicy = _RETRY,
        sleep: Callable[[float], None] = time.sleep,
        component_images: Mapping[str, str] | None = None,
        app_spec: FilledSpec | None = None,
        preview_branch: str | None = None,
    ) -> None:
        """`component_images`: app_action's `IMAGE_DIGEST_<COMPONENT>` / `IMAGE_TAG_<COMPONENT>`
        variables (`artifacts.component_image_vars`; other names are ignored). `app_spec`: the spec
        from the repository (`artifacts.app_spec`, filled in), deployed instead of the live app's;
        its name finds the app when `do_app_id` is not set, and the first deploy creates it.
        `preview_branch`: the branch a preview's git-source components build (the pull request's head
        branch, GITHUB_HEAD_REF); production builds the spec's."""
        if not deployment.do_app_id and app_spec is None:
            raise ConfigError(
                "deployment_config.do_app_id: required with platform digitalocean "
                "(the app's id, from `doctl apps list` or the control panel URL), unless artifacts.app_spec names "
                "a spec whose name finds or creates the app"
            )
        self.app_id = deployment.do_app_id or ""
        self.preview_branch = preview_branch
        self._spec_file = app_spec
        self._app_spec = app_spec.document if app_spec is not None else None
        self._project_id = deployment.do_project_id
        self._component = deployment.do_component
        self._region = deployment.do_region
        self._component_images = {
            k: v for k, v in (component_images or {}).items() if k.startswith(("IMAGE_DIGEST_", "IMAGE_TAG_"))
        }
        self._health = health
        self._verify = verify
        self._deadline = deadline_seconds
        self._backoff = backoff
        self._sleep = sleep
        self.api = AppsApi(token, endpoint=endpoint, verify=verify, policy=retry, sleep=sleep)
        self._pinning = Pinning(self.api, self._await)
        self._source_commit: str | None = None
        """The commit git-source components must be built from (the gates' `source_commit`)."""
        self.last_logs: DeploymentLogs | None = None
        """Build and deploy logs of the last deployment that failed, or that `start` made live."""
        self.last_app: dict[str, Any] | None = None
        """The app as the last GET showed it (the `app` output)."""
        self._logs_failed = False
        self._print = {"BUILD": deployment.do_print_build_logs, "DEPLOY": deployment.do_print_deploy_logs}

    def pin_artifacts(self, version: str, digests: ArtifactDigests) -> None:
        """The gates approved `digests`: the spec file and component images this adapter deploys must
        be exactly those. Raises GateError (nothing touched) when they are not."""
        refuse_unapproved(self._spec_file, self._component_images, digests, version)
        self._source_commit = digests.source_commit
        if self._source_commit is None:
            # Refused here, before the deploy lock and any change, rather than in the middle of start.
            wanted = self._app_spec if self._app_spec is not None or not self._production_id() else None
            self._from_git(wanted if wanted is not None else self._app(self.app_id).get("spec") or {}, version)

    # --- read-only ------------------------------------------------------------------------------

    def live(self) -> Release | None:
        """The release of the app's active deployment, or None before its first deploy."""
        if not self._production_id():
            return None
        active = self._app(self.app_id).get("active_deployment")
        return self._release(active) if active and active.get("id") else None

    def live_url(self) -> str:
        url = self._app(self.app_id).get("live_url") if self._production_id() else None
        if not url:
            raise DeployError(
                f"app {self.app_id} has no live_url yet (it has never been deployed successfully)",
                platform=PLATFORM,
                operation="get app",
            )
        return str(url)

    def releases(self) -> list[Release]:
        """Recent ACTIVE and SUPERSEDED deployments, newest first, one per version.

        A version whose newest deployment was rolled back from (the next deployment to go live is a
        rollback to another one) is left out, unless it is live: App Platform's own record that
        it is no rollback candidate, for runs without a ledger.
        """
        if not self._production_id():
            return []
        body = self.api.read("list deployments", self.api.apps.list_deployments, self.app_id, per_page=_RECENT)
        return kept_releases((body or {}).get("deployments") or [], self._release)

    # --- deploy -----------------------------------------------------------------------------------

    def start(self, version: str, image: str | None) -> Release:
        """Deploy `version` and return once App Platform made it live. Idempotent per version.

        Raises DeployError (the previous release still serving) with the deploy logs' tail when the
        deployment fails, is cancelled or superseded, or misses the deadline (then it is cancelled).
        Raises ConfigError for an image App Platform cannot pull or an ambiguous component.
        """
        source = parse_image(image) if image else None
        if not self._production_id():
            return self._create(version, source, image)
        app = self._app(self.app_id)
        refuse_if_pinned(app, f"deploy {version}")
        wanted = (
            app.get("spec") or {} if self._app_spec is None else with_sealed_values(self._app_spec, app.get("spec"))
        )
        base = with_component_images(wanted, self._component_images)
        component = select_component(base, self._component)
        spec, built = self._from_git(with_release(base, component, version, source, self._health), version)
        active = app.get("active_deployment") or {}
        if (
            version_of(active.get("spec"), component) == version
            and images_of(active.get("spec")) == images_of(spec)
            and all(commits_of(active).get(name) == self._source_commit for name in built)
        ):
            log.info("version %s is already live (deployment %s)", version, active.get("id"))
            return self._release(active)
        deployment = unfinished(app, version, component) or update_spec(
            self.api, app, spec, version, component, refresh_sources=bool(built)
        )
        try:
            release = self._await(self.app_id, deployment, f"deploy of {version}", logs=True, built=built)
        except BuiltOtherCommit as live:
            undo_other_commit(self, live, active, version)
        # The reference as given: App Platform's DOCR block drops the registry name.
        return Release(release.version, image=image or release.image, ref=release.ref)

    def _from_git(
        self, spec: dict[str, Any], version: str, branch: str | None = None
    ) -> tuple[dict[str, Any], list[str]]:
        """The spec to send and the components App Platform builds from git (`source_commit.py`)."""
        return git_built(spec, self._source_commit, version, branch)

    def _create(self, version: str, source: ImageSource | None, image: str | None) -> Release:
        """The first deploy of an app spec from the repository: App Platform creates the app."""
        return create_from_spec(self, version, source, image)

    def _production_id(self) -> str:
        """Production's app id: `do_app_id`, or the app named by the repository's spec ("" while it
        does not exist yet)."""
        if not self.app_id and self._app_spec is not None:
            found = find_app(self.api, str(self._app_spec["name"]))
            if found is not None:
                self.app_id = str(found["id"])
        return self.app_id

    def verify_without_url(self) -> None:
        """Verification of an app with no URL: its workers report healthy with every replica
        ready (its deployment went live already). Raises DeployError naming the unhealthy ones."""
        require_healthy_components(self.api, self.app_id, (self.last_app or self._app(self.app_id)).get("spec"))

    @property
    def serves_http(self) -> bool:
        """False for an app of workers and jobs only: it has no URL, verification uses what exists."""
        app = self.last_app if self.last_app is not None else self._app(self.app_id)
        return serves_http(app.get("spec"))

    # --- rollback ---------------------------------------------------------------------------------

    def rollback(self, to: Release) -> None:
        """Validate, then roll back to `to`'s deployment (pinning the app) and wait until it is live.

        Raises DeployError with App Platform's reason when it refuses the rollback.
        """
        ref = to.ref or self._deployment_of(to.version)
        app = self._app(self.app_id)
        self._pinning.roll_back(app, ref, f"rollback to {to.version}", lambda d: self._is(d, to.version))

    def confirm_rollback(self, healthy: bool) -> None:
        """Commit the pinned rollback (healthy) or revert it (App Platform redeploys the spec from
        before the rollback, and we wait for that). Nothing to do when the app is not pinned."""
        self._pinning.confirm(self.app_id, healthy)

    # --- previews ---------------------------------------------------------------------------------

    def remove(self) -> bool:
        """Production is never removed: a preview target (`preview_target.DigitalOceanPreview`) is."""
        raise DeployError("only a preview target can be removed", platform=PLATFORM, operation="remove")

    def preview_base(self) -> dict[str, Any]:
        """The spec a preview starts from: the repository's (the pull request's own file, gated like
        production's) with production's encrypted values, or else production's live spec."""
        production = self._app(self.app_id).get("spec") or {} if self._production_id() else {}
        if self._app_spec is not None:
            return with_sealed_values(self._app_spec, production)
        return production

    def release_spec(
        self, base: dict[str, Any], version: str, source: ImageSource | None
    ) -> tuple[dict[str, Any], str, list[str]]:
        """`base` as this adapter deploys `version` of `source`: the spec, the component carrying the
        release, and the components App Platform builds from git (held to the validated commit)."""
        component = select_component(base, self._component)
        spec, built = self._from_git(with_release(base, component, version, source, self._health), version)
        return spec, component, built

    def built_from_validated_commit(self, deployment: dict[str, Any], built: Sequence[str]) -> bool:
        """Every git-built component of `deployment` was built from the commit the gates validated."""
        return all(commits_of(deployment).get(name) == self._source_commit for name in built)

    def await_deployment(
        self, app_id: str, deployment: dict[str, Any], operation: str, built: Sequence[str] = ()
    ) -> Release:
        """Wait for `deployment` of any app under this adapter's deadline (see `_await`)."""
        return self._await(app_id, deployment, operation, built=built)

    def app(self, app_id: str) -> dict[str, Any]:
        """GET an app (production's held to `do_region`)."""
        return self._app(app_id)

    def delete_app(
        self,
        app_id: str | None,
        app_name: str | None,
        *,
        before_delete: Callable[[DeletedApp], None] | None = None,
    ) -> DeletedApp | None:
        """mode delete: remove another app by id or name. Idempotent: None when it does not exist.
        Raises ConfigError for production's own app."""
        production_name = str(self._app_spec["name"]) if self._app_spec is not None else None
        return delete_named_app(
            self.api,
            app_id,
            app_name,
            production_id=self.app_id,
            production_name=production_name,
            before_delete=before_delete,
        )

    def run_outputs(self) -> PlatformOutputs | None:
        """app_action's outputs (`app`, `build_logs`, `deploy_logs`) and the logs to print: a failed
        deployment's always, a successful one's as `do_print_build_logs` / `do_print_deploy_logs` ask."""
        return outputs_of(self.last_logs, self.last_app, failed=self._logs_failed, print_kinds=self._print)

    # --- internals --------------------------------------------------------------------------------

    def _app(self, app_id: str) -> dict[str, Any]:
        """GET the app; production's is held to `do_region` (a ConfigError before anything changed)."""
        body = self.api.read("get app", self.api.apps.get, app_id)
        app = dict((body or {}).get("app") or {})
        if app_id == self.app_id and self._region:
            check_region(app, self._region)
        self.last_app = app
        return app

    def release_of(self, deployment: dict[str, Any], url: str | None = None) -> Release:
        """The release an App Platform deployment (of any app with production's components) runs."""
        return self._release(deployment, url)

    def _release(self, deployment: dict[str, Any], url: str | None = None) -> Release:
        return deployment_release(deployment, self._component, url)

    def _is(self, deployment: dict[str, Any], version: str) -> bool:
        return version_of(deployment.get("spec"), self._component) == version

    def _deployment_of(self, version: str) -> str:
        for release in self.releases():
            if release.version == version and release.ref:
                return release.ref
        raise DeployError(
            f"rollback to {version}: App Platform keeps no deployment of that version",
            platform=PLATFORM,
            operation="rollback",
        )

    def _await(
        self,
        app_id: str,
        deployment: dict[str, Any],
        operation: str,
        *,
        logs: bool = False,
        built: Sequence[str] = (),
    ) -> Release:
        """Wait for `deployment`; its logs are read when it fails, and on success when `logs`.
        `built`: components that must be built from the validated commit; one built from another
        is cancelled before it goes live (DeployError), or raises BuiltOtherCommit if it already did."""
        deployment_id = str(deployment.get("id"))
        outcome = wait_for_deployment(
            self.api,
            app_id,
            deployment_id,
            deadline_seconds=self._deadline,
            backoff=self._backoff,
            sleep=self._sleep,
            refuse=other_commit(built, self._source_commit) if built else None,
        )
        if outcome.refused is not None and outcome.phase == "ACTIVE":
            raise BuiltOtherCommit(outcome.refused, deployment_id)
        if outcome.refused is not None:
            self._cancel(app_id, deployment_id)
            self.last_logs = fetch_logs(self.api, app_id, deployment_id, verify=self._verify)
            self._logs_failed = True
            raise DeployError(
                f"{operation}: {outcome.refused}; deployment {deployment_id} was cancelled before it went live and "
                "the previous release keeps serving. Validate that commit, or deploy again from the validated one",
                platform=PLATFORM,
                operation="wait for deployment",
            )
        if outcome.phase == "ACTIVE":
            if logs:
                self.last_logs = fetch_logs(self.api, app_id, deployment_id, verify=self._verify)
                self._logs_failed = False
            return self._release(outcome.deployment)
        if outcome.timed_out:
            self._cancel(app_id, deployment_id)
        self.last_logs = fetch_logs(self.api, app_id, deployment_id, verify=self._verify)
        self._logs_failed = True
        tail = "\n".join(f"    {line}" for line in self.last_logs.tail()) or "    (no logs available)"
        raise DeployError(
            f"{operation}: {failure(outcome, self._deadline)}\n  last log lines (build, then deploy):\n{tail}",
            platform=PLATFORM,
            operation="wait for deployment",
        )

    def _cancel(self, app_id: str, deployment_id: str) -> None:
        # Past the deadline we stop waiting; cancelling keeps App Platform from making the release
        # live later, behind the back of a run that already reported failure.
        try:
            self.api.read("cancel deployment", self.api.apps.cancel_deployment, app_id, deployment_id)
        except DeployError as exc:
            log.warning("could not cancel deployment %s after the deadline: %s", deployment_id, exc)
