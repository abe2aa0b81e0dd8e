"""The pure half: names, manifests, replica splits and rollout states, without any API server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.platforms.kubernetes.manifest import (
    RunInfo,
    preview_service,
    release_deployment,
    release_name,
    replica_split,
    with_selector,
)
from orchestrator.platforms.kubernetes.rollout import rollout_state

LIVE: dict[str, Any] = {
    "metadata": {"name": "shop", "resourceVersion": "7", "generation": 3},
    "spec": {
        "replicas": 4,
        "selector": {"matchLabels": {"app": "shop"}},
        "template": {
            "metadata": {"labels": {"app": "shop", "deploy-orchestrator/version": "v1"}},
            "spec": {
                "containers": [
                    {"name": "sidecar", "image": "envoy:1"},
                    {"name": "web", "image": "shop:v1", "ports": [{"containerPort": 8080}]},
                ]
            },
        },
    },
    "status": {"observedGeneration": 3},
}


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (4, {"v1": 75, "v2": 25}, {"v1": 3, "v2": 1}),
        (4, {"v1": 50, "v2": 50}, {"v1": 2, "v2": 2}),
        (4, {"v1": 90, "v2": 10}, {"v1": 3, "v2": 1}),  # granularity: 1 of 4 pods is 25%
        (10, {"v1": 90, "v2": 10}, {"v1": 9, "v2": 1}),
        (3, {"v1": 50, "v2": 50}, {"v1": 1, "v2": 2}),  # round half up
        (1, {"v1": 80, "v2": 20}, {"v1": 1, "v2": 1}),  # both sides need a pod: briefly 2
        (4, {"v1": 0, "v2": 100}, {"v1": 0, "v2": 4}),
        (4, {"v1": 100, "v2": 0}, {"v1": 4, "v2": 0}),
    ],
)
def test_replica_split_realises_weights_as_pods(total: int, weights: dict[str, int], expected: dict[str, int]) -> None:
    assert replica_split(total, weights) == expected


def test_release_deployment_copies_the_live_template_with_the_new_image_and_version() -> None:
    run = RunInfo(
        run="9", repository="acme/shop", commit="c0ffee", run_uri="https://github.com/acme/shop/actions/runs/9"
    )
    body = release_deployment(
        LIVE,
        app="shop",
        version="v2",
        image="shop:v2",
        replicas=4,
        total=4,
        container="web",
        run=run,
        started_at="2026-01-01T00:00:00Z",
        progress_deadline=120,
    )
    assert body["metadata"]["name"] == "shop-v2"
    assert body["spec"]["selector"] == {"matchLabels": {"app": "shop", "deploy-orchestrator/version": "v2"}}
    template = body["spec"]["template"]
    assert template["metadata"]["labels"] == {
        "app": "shop",
        "deploy-orchestrator/version": "v2",
        "app.kubernetes.io/name": "shop",
    }
    assert [c["image"] for c in template["spec"]["containers"]] == ["envoy:1", "shop:v2"]
    assert body["spec"]["progressDeadlineSeconds"] == 120
    assert json.loads(body["metadata"]["annotations"]["actions.github.com/k8s-deploy"])["commit"] == "c0ffee"
    assert LIVE["spec"]["template"]["spec"]["containers"][1]["image"] == "shop:v1", "the input is not modified"


def test_release_names_are_dns_labels() -> None:
    assert release_name("shop", "v2") == "shop-v2"
    odd = release_name("shop", "Release_2.0+build/7")
    assert odd.startswith("shop-release-2-0-build-7-") and len(odd) <= 63
    long = release_name("shop", "x" * 80)
    assert len(long) == 63 and long != release_name("shop", "x" * 81)


def test_selector_pinning_and_widening_keep_the_services_own_keys() -> None:
    service = {"metadata": {"name": "shop"}, "spec": {"selector": {"app": "shop", "deploy-orchestrator/version": "v1"}}}
    assert with_selector(service, "v2", RunInfo())["spec"]["selector"] == {
        "app": "shop",
        "deploy-orchestrator/version": "v2",
    }
    assert with_selector(service, None, RunInfo())["spec"]["selector"] == {"app": "shop"}
    preview = preview_service(
        {"spec": {"selector": {"app": "shop"}, "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}},
        app="shop",
        version="v2",
        run=RunInfo(),
    )
    assert preview["metadata"]["name"] == "shop-preview"
    assert preview["spec"]["ports"] == [{"name": "http", "port": 80}]
    assert preview["spec"]["selector"] == {"app": "shop", "deploy-orchestrator/version": "v2"}


def _deployment(generation: int, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "shop", "generation": generation}, "spec": {"replicas": 3}, "status": status}


@pytest.mark.parametrize(
    ("deployment", "done", "detail"),
    [
        (
            _deployment(2, observedGeneration=1),
            False,
            "waiting for the controller to observe deployment shop's new spec",
        ),
        (_deployment(2, observedGeneration=2, updatedReplicas=1, replicas=4), False, "1 of 3 new replicas updated"),
        (
            _deployment(2, observedGeneration=2, updatedReplicas=3, replicas=4),
            False,
            "1 old replicas pending termination",
        ),
        (
            _deployment(2, observedGeneration=2, updatedReplicas=3, replicas=3, availableReplicas=2),
            False,
            "2 of 3 updated replicas available",
        ),
        (
            _deployment(2, observedGeneration=2, updatedReplicas=3, replicas=3, availableReplicas=3),
            True,
            "deployment shop successfully rolled out (3 available)",
        ),
    ],
)
def test_rollout_state_follows_kubectl_rollout_status(deployment: dict[str, Any], done: bool, detail: str) -> None:
    state = rollout_state(deployment)
    assert (state.done, state.detail, state.failure) == (done, detail, None)


def test_progress_deadline_exceeded_is_a_failure_with_the_condition() -> None:
    condition = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "shop-5d4" has timed out progressing.',
    }
    state = rollout_state(_deployment(2, observedGeneration=2, updatedReplicas=1, conditions=[condition]))
    assert state.failure == (
        'condition Progressing=False, reason ProgressDeadlineExceeded: ReplicaSet "shop-5d4" has timed out progressing.'
    )
