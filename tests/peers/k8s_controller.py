"""The emulator's stand-in for kube-controller-manager: the Deployment controller and the garbage
collector, as a loop over the store (the caller holds the emulator's lock).

- Each new generation is observed; `rollout_delay` seconds later the rollout is complete (updated,
  ready and available replicas) and the new template's pods serve. A version in `never_ready` never
  becomes available: its old pods keep serving, and after `progressDeadlineSeconds` the condition
  Progressing=False/ProgressDeadlineExceeded appears.
- Conditions carry `lastUpdateTime` (reason or message changed) and `lastTransitionTime` (status
  changed); the annotation `deployment.kubernetes.io/revision` counts template changes; every status
  write is a managed-fields entry of `kube-controller-manager` on the `status` subresource.
- An object deleted with a Foreground or Orphan propagation policy waits, with `deletionTimestamp`,
  until its finalizer ran (the next pass), then goes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tests.peers.k8s_objects import field_set, managed_entry, timestamp
from tests.peers.k8s_store import Key, Store

__all__ = ["VERSION_LABEL", "Controller", "Rollout"]

VERSION_LABEL = "deploy-orchestrator/version"
REVISION = "deployment.kubernetes.io/revision"
_GC_FINALIZERS = ("foregroundDeletion", "orphan")


@dataclass
class Rollout:
    generation: int
    since: float
    serving: dict[str, str] | None
    """Labels of the pods that serve now (the last template that became available)."""
    template: Any = None


class Controller:
    def __init__(self, store: Store, never_ready: set[str]) -> None:
        self.store = store
        self.never_ready = never_ready
        self.rollout_delay = 0.05
        self.rollouts: dict[tuple[str, str], Rollout] = {}

    def step(self) -> None:
        for key, obj in list(self.store.objects.items()):
            if obj["metadata"].get("deletionTimestamp"):
                self._finalize(key, obj)
            elif key[0] == "deployments":
                self._reconcile(key, obj)

    def complete(self, key: Key, labels: dict[str, str]) -> None:
        """Mark the Deployment fully rolled out now (a seeded app)."""
        self._bump_revision(key, self.store.objects[key])
        obj = self.store.objects[key]
        self._set_status(key, obj, self._complete_status(obj))
        # Rolled out long ago: the controller has nothing left to do for this generation.
        long_ago = time.monotonic() - 3600
        self.rollouts[(key[1], key[2])] = Rollout(1, long_ago, dict(labels), obj["spec"]["template"])

    def forget(self, key: Key) -> None:
        self.rollouts.pop((key[1], key[2]), None)

    def _finalize(self, key: Key, obj: dict[str, Any]) -> None:
        finalizers = [f for f in obj["metadata"].get("finalizers") or [] if f not in _GC_FINALIZERS]
        if finalizers:
            return
        self.store.remove(key)
        self.forget(key)

    def _reconcile(self, key: Key, obj: dict[str, Any]) -> None:
        _kind, namespace, name = key
        now = time.monotonic()
        generation = int(obj["metadata"].get("generation", 1))
        spec = obj["spec"]
        rollout = self.rollouts.get((namespace, name))
        if rollout is None:
            rollout = self.rollouts[(namespace, name)] = Rollout(generation, now, None)
        elif rollout.generation != generation:
            rollout.generation, rollout.since = generation, now
        if rollout.template != spec["template"]:
            rollout.template = spec["template"]
            self._bump_revision(key, obj)
            obj = self.store.objects[key]
        labels = dict(spec["template"]["metadata"].get("labels") or {})
        wanted = int(spec.get("replicas", 1))
        version = labels.get(VERSION_LABEL, "")
        status = obj.get("status") or {}
        old = int(status.get("availableReplicas") or 0) if rollout.serving != labels else 0
        if version in self.never_ready and wanted > 0:
            deadline = float(spec.get("progressDeadlineSeconds", 600))
            new = _counts(generation, replicas=old + 1, updated=1, ready=old, available=old)
            new["unavailableReplicas"] = 1
            replica_set = f"{name}-{abs(hash(version)) % 10**10}"
            if now - rollout.since >= deadline:
                progressing = (
                    "False",
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{replica_set}" has timed out progressing.',
                )
            else:
                progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{replica_set}" is progressing.')
            available = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
            if not old:
                available = ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
            new["conditions"] = _conditions(status, available, progressing)
        elif now - rollout.since >= self.rollout_delay:
            new = self._complete_status(obj)
            rollout.serving = labels if wanted > 0 else rollout.serving
        else:
            new = {k: v for k, v in status.items() if k != "conditions"}
            new["observedGeneration"] = generation
            if rollout.serving == labels:
                # Scaling down takes pods out of the endpoints at once (they are terminating).
                for count in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
                    new[count] = min(int(new.get(count) or 0), wanted)
            else:
                # A new template: its ReplicaSet has no pods yet; the old pods still serve.
                new["updatedReplicas"] = 0
            new = {k: v for k, v in new.items() if v != 0 or k == "observedGeneration"}
            before = {c.get("type"): c for c in status.get("conditions") or []}
            if "Available" in before and rollout.serving != labels:
                # A new generation restarts the progress clock, as the controller does: a deadline an
                # earlier template exceeded says nothing about this one.
                available = before["Available"]
                replica_set = f"{name}-{abs(hash(str(spec['template']))) % 10**10}"
                new["conditions"] = _conditions(
                    status,
                    (available["status"], available["reason"], available["message"]),
                    ("True", "ReplicaSetUpdated", f'ReplicaSet "{replica_set}" is progressing.'),
                )
        if new != status:
            self._set_status(key, obj, new)

    def _complete_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        replicas = int(obj["spec"].get("replicas", 1))
        generation = int(obj["metadata"].get("generation", 1))
        status = _counts(generation, replicas=replicas, updated=replicas, ready=replicas, available=replicas)
        replica_set = f"{obj['metadata']['name']}-{abs(hash(str(obj['spec']['template']))) % 10**10}"
        status["conditions"] = _conditions(
            obj.get("status") or {},
            ("True", "MinimumReplicasAvailable", "Deployment has minimum availability."),
            ("True", "NewReplicaSetAvailable", f'ReplicaSet "{replica_set}" has successfully progressed.'),
        )
        return status

    def _set_status(self, key: Key, obj: dict[str, Any], status: dict[str, Any]) -> None:
        updated = dict(obj)
        updated["status"] = status
        metadata = dict(obj["metadata"])
        others = [e for e in metadata.get("managedFields") or [] if e.get("manager") != "kube-controller-manager"]
        entry = managed_entry("kube-controller-manager", "Update", "apps/v1", {"f:status": field_set(status)}, "status")
        metadata["managedFields"] = [*others, entry]
        updated["metadata"] = metadata
        self.store.write(key, updated)

    def _bump_revision(self, key: Key, obj: dict[str, Any]) -> None:
        metadata = dict(obj["metadata"])
        annotations = dict(metadata.get("annotations") or {})
        annotations[REVISION] = str(int(annotations.get(REVISION) or 0) + 1)
        metadata["annotations"] = annotations
        self.store.write(key, {**obj, "metadata": metadata})


def _counts(generation: int, *, replicas: int, updated: int, ready: int, available: int) -> dict[str, Any]:
    """A DeploymentStatus: zero counts are left out, as the API server's omitempty does."""
    counts = {"replicas": replicas, "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available}
    return {"observedGeneration": generation, **{k: v for k, v in counts.items() if v}}


def _conditions(status: dict[str, Any], *wanted: tuple[str, str, str]) -> list[dict[str, Any]]:
    previous = {c.get("type"): c for c in status.get("conditions") or []}
    now = timestamp()
    out = []
    for kind, (state, reason, message) in zip(("Available", "Progressing"), wanted, strict=True):
        before = previous.get(kind) or {}
        changed = before.get("status") != state
        moved = changed or before.get("reason") != reason or before.get("message") != message
        out.append(
            {
                "type": kind,
                "status": state,
                "lastUpdateTime": now if moved else before["lastUpdateTime"],
                "lastTransitionTime": now if changed else before["lastTransitionTime"],
                "reason": reason,
                "message": message,
            }
        )
    return out
