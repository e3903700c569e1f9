"""``OperatorSettings``: one frozen object, built once by ``codejury operator`` and passed
down. Nothing in this package reads the environment.

Two things may differ per run and are read from the run's annotations (``annotations``):
the KServe deployment mode and the InferenceService to roll the canary out on. The
settings hold their defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from codejury_operator.errors import InvalidRunError

GROUP = "codejury.io"
VERSION = "v1alpha1"
PLURAL = "selftrainingruns"
KIND = "SelfTrainingRun"
API_VERSION = f"{GROUP}/{VERSION}"

#: Annotations a run may carry to choose, per run, what the settings default.
KSERVE_MODE_ANNOTATION = f"{GROUP}/kserve-mode"
INFERENCE_SERVICE_ANNOTATION = f"{GROUP}/inference-service"


class KServeMode(StrEnum):
    """How KServe serves the reranker, which decides how a canary is rolled out.

    SERVERLESS: Knative revisions; the InferenceService's ``canaryTrafficPercent`` splits
    traffic between the last rolled-out revision and the new one (KServe's own canary,
    which it supports in this mode only).
    STANDARD: plain Deployments (KServe's "Standard", formerly "RawDeployment"), which
    have no canary of their own: the canary is a second InferenceService
    (``<name>-canary``) and a Gateway API HTTPRoute splits traffic by weight.
    """

    SERVERLESS = "Serverless"
    STANDARD = "Standard"


@dataclass(frozen=True)
class OperatorSettings:
    """What the operator needs beyond the custom resource; every field has its help."""

    image: str = field(
        default="ghcr.io/codejury/codejury:latest",
        metadata={"help": "Image of the training Job (its entry point is `codejury`)."},
    )
    run_dir_claim: str = field(
        default="codejury-runs",
        metadata={
            "help": "PersistentVolumeClaim holding the run directory (training data, the "
            "iterations, the reranker registry); mounted into every training Job."
        },
    )
    run_dir_mount: str = field(
        default="/var/lib/codejury", metadata={"help": "Where the claim is mounted in the Job."}
    )
    model_store_uri: str | None = field(
        default=None,
        metadata={
            "help": "URI KServe loads reranker versions from: the registry's root as KServe "
            "sees it, e.g. s3://bucket/registry when the registry is synced to object "
            "storage; default pvc://<run_dir_claim>/reranking/registry. A version v is "
            "<uri>/versions/v/model."
        },
    )
    registry_uri: str | None = field(
        default=None,
        metadata={
            "help": "reranking.registry_uri for the training Job; default the run "
            "directory's reranking/registry."
        },
    )
    service_account: str | None = field(
        default=None, metadata={"help": "Service account of the training Job's pod."}
    )
    settings_configmap: str | None = field(
        default=None,
        metadata={
            "help": "ConfigMap of CODEJURY_* settings the training Job gets with envFrom "
            "(the chart's <release>-settings: the Celery broker, Kafka, the log format); "
            "what the run's spec sets wins over it."
        },
    )
    settings_secret: str | None = field(
        default=None,
        metadata={
            "help": "Secret of CODEJURY_* settings the training Job gets with envFrom "
            "(the chart's existingSecret: credentials inside URLs)."
        },
    )
    job_deadline_s: int = field(
        default=24 * 3600,
        metadata={"help": "activeDeadlineSeconds of a training Job; past it the Job fails."},
    )
    kserve_mode: KServeMode = field(
        default=KServeMode.SERVERLESS,
        metadata={
            "help": f"Default KServe mode; a run overrides it with {KSERVE_MODE_ANNOTATION}."
        },
    )
    inference_service: str = field(
        default="reranker",
        metadata={
            "help": "Default InferenceService of the reranker, in the run's namespace; a run "
            f"overrides it with {INFERENCE_SERVICE_ANNOTATION}."
        },
    )
    gateway: str = field(
        default="codejury-gateway",
        metadata={
            "help": "Standard mode: the Gateway the traffic-splitting HTTPRoute attaches to."
        },
    )
    tick_s: float = field(
        default=10.0, metadata={"help": "Seconds between reconciles of a run (a kopf timer)."}
    )

    @property
    def model_root(self) -> str:
        return self.model_store_uri or f"pvc://{self.run_dir_claim}/reranking/registry"

    def storage_uri(self, version: str) -> str:
        """Where KServe loads ``version`` from (the registry's layout)."""
        return f"{self.model_root.rstrip('/')}/versions/{version}/model"


@dataclass(frozen=True)
class RunTarget:
    """What one run rolls its canary out on."""

    inference_service: str
    mode: KServeMode


def run_target(settings: OperatorSettings, annotations: Mapping[str, str]) -> RunTarget:
    """The run's InferenceService and KServe mode: its annotations, else the settings."""
    raw_mode = annotations.get(KSERVE_MODE_ANNOTATION)
    if raw_mode is None:
        mode = settings.kserve_mode
    else:
        modes = {m.value.lower(): m for m in KServeMode}
        modes["rawdeployment"] = KServeMode.STANDARD  # KServe's name before 0.15
        found = modes.get(raw_mode.strip().lower())
        if found is None:
            raise InvalidRunError(
                f"metadata.annotations[{KSERVE_MODE_ANNOTATION}]={raw_mode!r}: not a KServe "
                f"mode; set it to {KServeMode.SERVERLESS.value} or {KServeMode.STANDARD.value}"
            )
        mode = found
    name = annotations.get(INFERENCE_SERVICE_ANNOTATION) or settings.inference_service
    return RunTarget(name, mode)
