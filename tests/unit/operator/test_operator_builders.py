"""The operator's pure builders: the training Job, the KServe changes, the status and its
conditions, Events; every core object validated against the Kubernetes schemas."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from codejury.control.actions import (
    EmitEvent,
    EventType,
    Promote,
    RecordMetrics,
    Rollback,
    SetCanary,
    StartTrainingJob,
)
from codejury.control.observations import JobState
from codejury.control.reconcile import reconcile
from codejury.control.spec import parse_spec
from codejury.control.status import Phase, RunStatus
from codejury.control.training_job import training_command
from codejury_operator.conditions import build_event, read_status, status_patch
from codejury_operator.errors import InvalidRunError
from codejury_operator.inference import Ensure, Merge, Remove, Rollout, kserve_changes
from codejury_operator.jobs import build_job, job_name, observe_job, training_args
from codejury_operator.settings import (
    KSERVE_MODE_ANNOTATION,
    KServeMode,
    OperatorSettings,
    run_target,
)

from tests.unit.control.control_cases import GPU_TOLERATIONS

K8S_VERSION = "1.30"
ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

SPEC = {
    "generator": "tiny-generator",
    "rewardModelBackbone": "tiny-backbone",
    "datasets": ["mbxp/python", "mbxp/cpp"],
    "samplesPerProblem": 4,
    "resources": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"nvidia.com/gpu": 2}},
    "nodeSelector": {"pool": "gpu"},
    "tolerations": GPU_TOLERATIONS,
}
RUN: dict[str, Any] = {
    "apiVersion": "codejury.io/v1alpha1",
    "kind": "SelfTrainingRun",
    "metadata": {"name": "nightly", "namespace": "ml", "uid": "uid-1", "generation": 1},
    "spec": SPEC,
}


def validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_the_training_job_runs_the_iteration_with_the_spec_s_resources() -> None:
    spec = parse_spec(SPEC)
    action = StartTrainingJob(3, 2, "v-parent")
    job = build_job(RUN, spec, action, OperatorSettings(image="img:1", job_deadline_s=600))
    validate(job)
    assert job["metadata"]["name"] == "nightly-i3-a2"
    assert job["metadata"]["labels"]["codejury.io/run"] == "nightly"
    assert job["metadata"]["labels"]["codejury.io/iteration"] == "3"
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "SelfTrainingRun",
        "nightly",
        "uid-1",
        True,
    )
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 600
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"pool": "gpu"}
    # core v1.Tolerations in the spec, so the pod gets them as written
    assert pod["tolerations"] == SPEC["tolerations"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "codejury-runs"
    (container,) = pod["containers"]
    assert container["image"] == "img:1"
    assert container["args"][:4] == ["train", "iteration", "--iteration", "3"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "8Gi"}
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["CODEJURY_GENERATION__MODEL"] == "tiny-generator"
    assert env["CODEJURY_TRAINING__LANGUAGES"] == "python,cpp"
    assert env["TRAINING_REPORT_ITERATION"] == "3"


def test_no_gpus_means_no_gpu_limit_and_no_scheduling_constraints() -> None:
    spec = parse_spec(
        {k: v for k, v in SPEC.items() if k not in ("resources", "nodeSelector", "tolerations")}
    )
    job = build_job(RUN, spec, StartTrainingJob(1, 1, None), OperatorSettings())
    validate(job)
    pod = job["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in pod and "tolerations" not in pod


def test_the_job_gets_the_deployment_s_settings_by_reference_and_the_spec_wins() -> None:
    """--executor celery needs the Celery broker: the chart's settings ConfigMap and the
    user's Secret reach the Job by envFrom; the spec's own env overrides them."""
    spec = parse_spec(SPEC)
    settings = OperatorSettings(settings_configmap="cj-settings", settings_secret="cj-secret")
    job = build_job(RUN, spec, StartTrainingJob(1, 1, None), settings)
    validate(job)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [
        {"configMapRef": {"name": "cj-settings"}},
        {"secretRef": {"name": "cj-secret"}},
    ]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["CODEJURY_GENERATION__MODEL"] == spec.generator  # env beats envFrom
    plain = build_job(RUN, spec, StartTrainingJob(1, 1, None), OperatorSettings())
    assert "envFrom" not in plain["spec"]["template"]["spec"]["containers"][0]


def test_the_job_runs_the_iteration_on_the_deployment_s_workers() -> None:
    spec = parse_spec(SPEC)
    args = training_args(StartTrainingJob(4, 2, "v3"), spec)
    assert args == training_command(StartTrainingJob(4, 2, "v3"), spec)
    assert args[:4] == ["train", "iteration", "--iteration", "4"]
    assert args[args.index("--base-version") + 1] == "v3"
    assert args[args.index("--executor") + 1] == "celery"
    assert training_args(StartTrainingJob(1, 1, None), spec)[5] == "stable"


def test_job_names_fit_a_label_and_stay_distinct() -> None:
    long_a, long_b = "a" * 80 + "x", "a" * 80 + "y"
    a, b = job_name(long_a, 12, 3), job_name(long_b, 12, 3)
    assert len(a) <= 63 and len(b) <= 63 and a != b and a.endswith("-i12-a3")


def _pod(message: str | None, exit_code: int = 0) -> dict[str, Any]:
    terminated: dict[str, Any] = {"exitCode": exit_code, "reason": "Completed"}
    if message is not None:
        terminated["message"] = message
    return {
        "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {"containerStatuses": [{"name": "train", "state": {"terminated": terminated}}]},
    }


def test_a_succeeded_job_reports_its_version_and_metrics_from_the_termination_message() -> None:
    job = {"status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}
    report = json.dumps({"version": "v-new", "metrics": {"pair_accuracy": 0.8}})
    seen = observe_job(2, 1, job, [_pod(report)])
    assert seen is not None and seen.state is JobState.SUCCEEDED
    assert (seen.version, seen.metrics) == ("v-new", {"pair_accuracy": 0.8})


def test_a_succeeded_job_without_a_report_is_a_failure_that_says_so() -> None:
    job = {"status": {"succeeded": 1}}
    seen = observe_job(2, 1, job, [_pod("training done")])
    assert seen is not None and seen.state is JobState.FAILED
    assert "not the version report" in seen.reason


def test_a_failed_job_s_reason_has_the_condition_and_the_log_tail() -> None:
    job = {
        "status": {
            "failed": 1,
            "conditions": [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"},
            ],
        }
    }
    seen = observe_job(1, 1, job, [_pod("step 1\nCUDA out of memory", exit_code=1)])
    assert seen is not None and seen.state is JobState.FAILED
    assert "BackoffLimitExceeded" in seen.reason and "CUDA out of memory" in seen.reason


def test_a_job_in_flight_is_running_and_no_job_is_none() -> None:
    seen = observe_job(1, 1, {"status": {"active": 1}}, [])
    assert seen is not None and seen.state is JobState.RUNNING
    assert observe_job(1, 1, None, []) is None


def _rollout(mode: KServeMode) -> Rollout:
    return Rollout("ml", run_target(OperatorSettings(kserve_mode=mode), {}), {"uid": "u"})


def test_serverless_mode_uses_kserve_s_canary_traffic_percent() -> None:
    settings = OperatorSettings(model_store_uri="s3://bucket/registry")
    rollout = _rollout(KServeMode.SERVERLESS)
    (canary,) = kserve_changes(SetCanary("v2", 10), rollout, settings)
    assert isinstance(canary, Merge) and canary.ref.name == "reranker"
    predictor = canary.patch["spec"]["predictor"]
    assert predictor == {
        "canaryTrafficPercent": 10,
        "model": {"storageUri": "s3://bucket/registry/versions/v2/model"},
    }
    (promote,) = kserve_changes(Promote("v2"), rollout, settings)
    assert isinstance(promote, Merge)
    assert promote.patch["spec"]["predictor"]["canaryTrafficPercent"] is None  # removed
    (rollback,) = kserve_changes(Rollback("v2", "worse"), rollout, settings)
    assert isinstance(rollback, Merge)
    assert rollback.patch["spec"]["predictor"] == {"canaryTrafficPercent": 0}


def test_standard_mode_uses_a_second_inference_service_and_a_weighted_route() -> None:
    settings = OperatorSettings(run_dir_claim="runs")
    rollout = _rollout(KServeMode.STANDARD)
    stable = {
        "metadata": {"annotations": {"serving.kserve.io/deploymentMode": "Standard"}},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "huggingface"}, "storageUri": "pvc://runs/old"},
                "minReplicas": 1,
            }
        },
    }
    isvc, route = kserve_changes(SetCanary("v2", 50), rollout, settings, stable)
    assert isinstance(isvc, Ensure) and isvc.ref.name == "reranker-canary"
    model = isvc.body["spec"]["predictor"]["model"]
    assert model == {
        "modelFormat": {"name": "huggingface"},
        "storageUri": "pvc://runs/reranking/registry/versions/v2/model",
    }
    assert isvc.body["spec"]["predictor"]["minReplicas"] == 1
    assert isinstance(route, Ensure) and route.ref.plural == "httproutes"
    weights = [b["weight"] for b in route.body["spec"]["rules"][0]["backendRefs"]]
    assert weights == [50, 50]
    promote = kserve_changes(Promote("v2"), rollout, settings)
    assert [type(c) for c in promote] == [Merge, Ensure, Remove]
    rollback = kserve_changes(Rollback("v2", "worse"), rollout, settings)
    assert [type(c) for c in rollback] == [Ensure, Remove]
    assert isinstance(rollback[0], Ensure)
    assert [b["weight"] for b in rollback[0].body["spec"]["rules"][0]["backendRefs"]] == [100, 0]


def test_the_kserve_mode_is_chosen_per_run_by_annotation() -> None:
    settings = OperatorSettings(kserve_mode=KServeMode.SERVERLESS)
    assert run_target(settings, {}).mode is KServeMode.SERVERLESS
    assert run_target(settings, {KSERVE_MODE_ANNOTATION: "Standard"}).mode is KServeMode.STANDARD
    legacy = {KSERVE_MODE_ANNOTATION: "RawDeployment"}
    assert run_target(settings, legacy).mode is KServeMode.STANDARD
    with pytest.raises(InvalidRunError, match=r"kserve-mode\]='Knative': not a KServe mode"):
        run_target(settings, {KSERVE_MODE_ANNOTATION: "Knative"})


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies the status patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def test_the_status_survives_a_merge_patch_round_trip() -> None:
    spec = parse_spec(SPEC)
    from codejury.control.observations import Observations, TrainingJob

    status = reconcile(spec, RunStatus(), Observations(now=NOW)).status
    job = TrainingJob(1, 1, JobState.SUCCEEDED, "v1", {"acc": 0.5})
    status = reconcile(spec, status, Observations(now=NOW, job=job)).status
    assert status.phase is Phase.CANARY
    stored = _merge({}, status_patch(status, 3))
    assert "stableVersion" not in stored  # None deletes the key
    assert read_status(stored) == status
    assert stored["phase"] == "Canary" and stored["canaryWeight"] == 10
    assert stored["observedGeneration"] == 3
    assert {c["type"] for c in stored["conditions"]} == {"Ready", "Progressing", "Degraded"}
    assert all(c["observedGeneration"] == 3 for c in stored["conditions"])
    # no nulls inside list items: the CRD's schema has none
    assert all(None not in item.values() for item in stored["iterations"])
    assert read_status({}) == RunStatus()
    with pytest.raises(InvalidRunError, match=r"status\.phase='Dancing'.*clear the run's status"):
        read_status({**status.to_dict(), "phase": "Dancing"})


def test_conditions_are_kubernetes_conditions() -> None:
    spec = parse_spec(SPEC)
    from codejury.control.observations import Observations

    status = reconcile(spec, RunStatus(), Observations(now=NOW)).status
    (ready, progressing, degraded) = status_patch(status, 7)["conditions"]
    assert ready == {
        "type": "Ready",
        "status": "False",
        "reason": "TrainingInProgress",
        "message": ready["message"],
        "lastTransitionTime": "2026-01-02T03:04:05Z",
        "observedGeneration": 7,
    }
    assert progressing["status"] == "True" and degraded["status"] == "False"


def test_events_validate_and_are_named_by_what_they_say() -> None:
    warning = EmitEvent(EventType.WARNING, "RolledBack", "iteration 1: rolled back v2 at 10%")
    event = build_event(RUN, warning, NOW, iteration=1)
    validate(event)
    assert event["type"] == "Warning" and event["reason"] == "RolledBack"
    assert event["involvedObject"]["kind"] == "SelfTrainingRun"
    assert (
        build_event(RUN, warning, NOW, iteration=1)["metadata"]["name"]
        == (event["metadata"]["name"])
    )
    metrics = build_event(RUN, RecordMetrics(1, "v2", {"acc": 0.75}), NOW, iteration=1)
    validate(metrics)
    assert "acc=0.75" in metrics["message"]


def test_the_rbac_manifests_validate_and_grant_no_wildcards() -> None:
    docs = [d for d in yaml.safe_load_all((ROOT / "operators/rbac.yaml").read_text()) if d]
    assert {d["kind"] for d in docs} == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    }
    for doc in docs:
        validate(doc)
        for rule in doc.get("rules", []):
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
    (cluster,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert cluster["rules"] == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["get", "list", "watch"],
        }
    ]
