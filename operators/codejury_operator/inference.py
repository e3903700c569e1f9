"""The KServe changes that apply ``SetCanary``, ``Promote`` and ``Rollback``, as data.

Two modes (``settings.KServeMode``), chosen per run:

Serverless (Knative): KServe's own canary. ``SetCanary(v, w)`` merge-patches the
InferenceService's predictor to ``storageUri`` = v and ``canaryTrafficPercent`` = w: the
new Knative revision gets w% and the last rolled-out one the rest. ``Promote(v)`` removes
``canaryTrafficPercent`` (the latest revision takes all traffic); ``Rollback`` sets it to
0, which pins all traffic to the last rolled-out revision (KServe's documented rollback).

Standard (plain Deployments; KServe's canary fields are Serverless-only): the canary is a
second InferenceService, ``<name>-canary``, a copy of the stable one's predictor with
``storageUri`` = v, and a Gateway API ``HTTPRoute`` ``<name>-split`` sends w% to its
predictor Service and the rest to the stable one's. ``Promote(v)`` points the stable
InferenceService at v, routes all traffic to it and deletes the canary one;
``Rollback`` routes all traffic to stable and deletes the canary one.

Every change is idempotent: merge patches, create-or-patch, delete-if-present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from codejury.control.actions import Promote, Rollback, SetCanary

from codejury_operator.kube import Ref
from codejury_operator.settings import KServeMode, OperatorSettings, RunTarget

ISVC_API = "serving.kserve.io/v1beta1"
ROUTE_API = "gateway.networking.k8s.io/v1"
VERSION_ANNOTATION = "codejury.io/reranker-version"


@dataclass(frozen=True)
class Merge:
    """Merge-patch the existing object ``ref`` with ``patch``."""

    ref: Ref
    patch: dict[str, Any]


@dataclass(frozen=True)
class Ensure:
    """Create ``body`` as ``ref``, or merge-patch the existing object to it."""

    ref: Ref
    body: dict[str, Any]


@dataclass(frozen=True)
class Remove:
    """Delete ``ref`` if it exists."""

    ref: Ref


KServeChange = Merge | Ensure | Remove


@dataclass(frozen=True)
class Rollout:
    """What the builders need about the run: where, which InferenceService, which mode."""

    namespace: str
    target: RunTarget
    owner: dict[str, Any] = field(default_factory=dict)  # ownerReference to the run

    @property
    def stable(self) -> Ref:
        return Ref(ISVC_API, "inferenceservices", self.namespace, self.target.inference_service)

    @property
    def canary(self) -> Ref:
        return self.stable.named(f"{self.target.inference_service}-canary")

    @property
    def route(self) -> Ref:
        return Ref(
            ROUTE_API, "httproutes", self.namespace, f"{self.target.inference_service}-split"
        )


def kserve_changes(
    action: SetCanary | Promote | Rollback,
    rollout: Rollout,
    settings: OperatorSettings,
    stable_isvc: Mapping[str, Any] | None = None,
) -> list[KServeChange]:
    """The changes for ``action``; Standard mode's ``SetCanary`` copies the predictor of
    ``stable_isvc`` (the stable InferenceService as read from the API)."""
    if rollout.target.mode is KServeMode.SERVERLESS:
        return [_serverless(action, rollout, settings)]
    return _standard(action, rollout, settings, stable_isvc)


def _serverless(
    action: SetCanary | Promote | Rollback, rollout: Rollout, settings: OperatorSettings
) -> KServeChange:
    if isinstance(action, SetCanary):
        predictor: dict[str, Any] = {
            "canaryTrafficPercent": action.weight,
            "model": {"storageUri": settings.storage_uri(action.version)},
        }
        annotations: dict[str, Any] = {VERSION_ANNOTATION + "-canary": action.version}
    elif isinstance(action, Promote):
        predictor = {
            "canaryTrafficPercent": None,
            "model": {"storageUri": settings.storage_uri(action.version)},
        }
        annotations = {VERSION_ANNOTATION: action.version, VERSION_ANNOTATION + "-canary": None}
    else:
        predictor = {"canaryTrafficPercent": 0}
        annotations = {VERSION_ANNOTATION + "-canary": None}
    return Merge(
        rollout.stable, {"metadata": {"annotations": annotations}, "spec": {"predictor": predictor}}
    )


def _standard(
    action: SetCanary | Promote | Rollback,
    rollout: Rollout,
    settings: OperatorSettings,
    stable_isvc: Mapping[str, Any] | None,
) -> list[KServeChange]:
    if isinstance(action, SetCanary):
        return [
            Ensure(rollout.canary, canary_isvc(rollout, settings, action.version, stable_isvc)),
            Ensure(rollout.route, http_route(rollout, settings, action.weight)),
        ]
    route = Ensure(rollout.route, http_route(rollout, settings, 0))
    if isinstance(action, Promote):
        promote = Merge(
            rollout.stable,
            {
                "metadata": {"annotations": {VERSION_ANNOTATION: action.version}},
                "spec": {
                    "predictor": {"model": {"storageUri": settings.storage_uri(action.version)}}
                },
            },
        )
        return [promote, route, Remove(rollout.canary)]
    return [route, Remove(rollout.canary)]


def canary_isvc(
    rollout: Rollout,
    settings: OperatorSettings,
    version: str,
    stable_isvc: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Standard mode: the stable InferenceService's predictor serving ``version``."""
    stable_spec = dict((stable_isvc or {}).get("spec") or {})
    predictor = dict(stable_spec.get("predictor") or {})
    predictor.pop("canaryTrafficPercent", None)
    model = dict(predictor.get("model") or {"modelFormat": {"name": "huggingface"}})
    model["storageUri"] = settings.storage_uri(version)
    predictor["model"] = model
    stable_meta = (stable_isvc or {}).get("metadata") or {}
    annotations = {
        k: v
        for k, v in (stable_meta.get("annotations") or {}).items()
        if k.startswith("serving.kserve.io/")
    }
    annotations["serving.kserve.io/deploymentMode"] = "Standard"
    annotations[VERSION_ANNOTATION] = version
    metadata: dict[str, Any] = {
        "name": rollout.canary.name,
        "namespace": rollout.namespace,
        "labels": {
            "app.kubernetes.io/name": "codejury",
            "app.kubernetes.io/component": "reranker-canary",
            "app.kubernetes.io/managed-by": "codejury-operator",
        },
        "annotations": annotations,
    }
    if rollout.owner:
        metadata["ownerReferences"] = [rollout.owner]
    return {
        "apiVersion": ISVC_API,
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }


def http_route(rollout: Rollout, settings: OperatorSettings, weight: int) -> dict[str, Any]:
    """Standard mode: ``weight`` percent to the canary's predictor, the rest to stable's."""
    stable, canary = rollout.stable.name, rollout.canary.name
    return {
        "apiVersion": ROUTE_API,
        "kind": "HTTPRoute",
        "metadata": {
            "name": rollout.route.name,
            "namespace": rollout.namespace,
            "labels": {
                "app.kubernetes.io/name": "codejury",
                "app.kubernetes.io/component": "reranker-split",
                "app.kubernetes.io/managed-by": "codejury-operator",
            },
        },
        "spec": {
            "parentRefs": [{"name": settings.gateway}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": f"{stable}-predictor", "port": 80, "weight": 100 - weight},
                        {"name": f"{canary}-predictor", "port": 80, "weight": weight},
                    ]
                }
            ],
        },
    }
