"""The operator end to end against kmock, an in-memory Kubernetes API: kopf watches the
runs, the handlers create Jobs, patch the InferenceService, post Events and write the
status. The training Job's pod and the traffic ConfigMap are written by the test, as the
cluster and a metrics exporter would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import kmock
import kopf
import pytest
from codejury_operator.handlers import RunController, build_registry
from codejury_operator.kube import KubeClient, Ref
from codejury_operator.settings import OperatorSettings
from codejury_operator.traffic import ConfigMapTrafficSource

pytestmark = pytest.mark.asyncio

NS = "ml"
RUN = Ref("codejury.io/v1alpha1", "selftrainingruns", NS, "nightly")
JOBS = Ref("batch/v1", "jobs", NS)
PODS = Ref("v1", "pods", NS)
EVENTS = Ref("v1", "events", NS)
CONFIGMAPS = Ref("v1", "configmaps", NS)
ISVC = Ref("serving.kserve.io/v1beta1", "inferenceservices", NS, "reranker")
SETTINGS = OperatorSettings(image="stub:1", tick_s=0.2, model_store_uri="s3://models/registry")


@asynccontextmanager
async def operator(url: str) -> AsyncIterator[None]:
    """A kopf operator over the handlers, in this event loop, until the block ends. It has
    a client of its own, as a separate process would."""
    own = KubeClient.connect(server=url, timeout_s=1.0)
    controller = RunController(SETTINGS, own, ConfigMapTrafficSource(own))
    registry = build_registry(SETTINGS, lambda: controller)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, insecure=True)

    @kopf.on.startup(registry=registry)
    def quiet(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.scanning.disabled = True
        settings.watching.reconnect_backoff = 0.1

    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=registry,
            namespaces=[NS],
            standalone=True,
            stop_flag=stop,
            ready_flag=ready,
        )
    )
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        own.close()


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def eventually(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Poll ``check`` (run in a thread: it calls the API) until it returns truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await asyncio.to_thread(check)
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def run_body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "codejury.io/v1alpha1",
        "kind": "SelfTrainingRun",
        # kmock assigns no uid or resourceVersion; kopf's finalizer patch tests the latter.
        "metadata": {
            "name": "nightly",
            "namespace": NS,
            "uid": "uid-nightly",
            "generation": 1,
            "resourceVersion": "1",
        },
        "spec": {
            "generator": "tiny-generator",
            "rewardModelBackbone": "tiny-backbone",
            "datasets": ["mbxp/python"],
            "canary": {"steps": [10, 50, 100], "minSamples": 100},
            **spec,
        },
    }


def isvc_body() -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "reranker", "namespace": NS},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "huggingface"}, "storageUri": "s3://v0"}
            }
        },
    }


def status_of(api: KubeClient) -> dict[str, Any]:
    return api.get(RUN).get("status") or {}


def jobs_of(api: KubeClient) -> list[dict[str, Any]]:
    return api.list(JOBS, {"codejury.io/run": "nightly"})


def finish_job(api: KubeClient, name: str, report: dict[str, Any] | None, failed: str = "") -> None:
    """What the cluster does when the Job's pod ends: the pod's status, then the Job's."""
    terminated: dict[str, Any] = {"exitCode": 1 if failed else 0}
    terminated["message"] = failed or json.dumps(report)
    api.create(
        PODS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{name}-pod", "namespace": NS, "labels": {"job-name": name}},
            "status": {
                "containerStatuses": [{"name": "train", "state": {"terminated": terminated}}]
            },
        },
    )
    status = {"failed": 1} if failed else {"succeeded": 1}
    api.patch(JOBS.named(name), {"status": status}, subresource="status")


def publish_traffic(api: KubeClient, since: str, stable: tuple[int, int], canary: tuple[int, int]):
    """The metrics exporter's counts: (labelled, passed) per arm since ``since``."""

    def arm(labelled: int, passed: int) -> str:
        return json.dumps({"requests": labelled, "labelled": labelled, "passed": passed})

    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "nightly-traffic", "namespace": NS},
        "data": {"since": since, "stable": arm(*stable), "canary": arm(*canary)},
    }
    api.ensure(CONFIGMAPS.named("nightly-traffic"), body)


async def start_canary(api: KubeClient) -> dict[str, Any]:
    """Create the run, see its Job, succeed it; the status at the canary's first step."""
    await call(api.create, Ref(ISVC.api_version, ISVC.plural, NS), isvc_body())
    await call(api.create, Ref(RUN.api_version, RUN.plural, NS), run_body())
    (job,) = await eventually(lambda: jobs_of(api), "the training Job")
    report = {"version": "v-i1", "metrics": {"pair_accuracy": 0.8}}
    await call(finish_job, api, job["metadata"]["name"], report)
    return await eventually(
        lambda: (s := status_of(api)).get("phase") == "Canary" and s, "the canary phase"
    )


def gauge(name: str, **labels: str) -> float | None:
    """A sample of the operator's own metrics (this process's registry)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, {"namespace": NS, "run": "nightly", **labels})


def status_patches(emulator: kmock.KubernetesEmulator) -> list[Any]:
    return [r for r in emulator if r.method.name == "PATCH" and str(r.url.path).endswith("/status")]


async def test_creating_a_run_creates_its_training_job(
    kmock: kmock.KubernetesEmulator, api: KubeClient
) -> None:
    async with operator(str(kmock.url).rstrip("/")):
        await call(api.create, Ref(RUN.api_version, RUN.plural, NS), run_body(iterations=2))
        (job,) = await eventually(lambda: jobs_of(api), "the training Job")
        status = await eventually(lambda: status_of(api).get("phase") == "Training", "Training")
        assert status
        # settled: ticks (every 0.2 s) that change nothing write nothing (a status patch on
        # every tick once made the operator slow to stop, and loads the API server)
        patches = len(status_patches(kmock))
        await asyncio.sleep(1.0)
        assert len(status_patches(kmock)) == patches
    assert job["metadata"]["name"] == "nightly-i1-a1"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-nightly"
    assert job["spec"]["backoffLimit"] == 0
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "stub:1"
    assert container["args"][:6] == [
        "train",
        "iteration",
        "--iteration",
        "1",
        "--base-version",
        "stable",
    ]
    saved = await call(status_of, api)
    assert saved["iteration"] == 1 and saved["trainingAttempt"] == 1
    reasons = {e["reason"] for e in await call(api.list, EVENTS)}
    assert "TrainingStarted" in reasons


# ~6 s; the retry is reconcile's decision (tests/unit/control) and the Job its builder's
@pytest.mark.slow
async def test_a_failed_job_is_retried_as_a_new_attempt(
    kmock: kmock.KubernetesEmulator, api: KubeClient
) -> None:
    async with operator(str(kmock.url).rstrip("/")):
        await call(api.create, Ref(RUN.api_version, RUN.plural, NS), run_body())
        (job,) = await eventually(lambda: jobs_of(api), "the training Job")
        await call(finish_job, api, job["metadata"]["name"], None, failed="CUDA out of memory")
        jobs = await eventually(lambda: len(j := jobs_of(api)) == 2 and j, "the second attempt")
    assert sorted(j["metadata"]["name"] for j in jobs) == ["nightly-i1-a1", "nightly-i1-a2"]
    events = [e for e in await call(api.list, EVENTS) if e["reason"] == "TrainingRetried"]
    assert events and "CUDA out of memory" in events[0]["message"]
    assert events[0]["type"] == "Warning"


async def test_a_succeeded_job_starts_the_canary_on_the_inference_service(
    kmock: kmock.KubernetesEmulator, api: KubeClient
) -> None:
    async with operator(str(kmock.url).rstrip("/")):
        status = await start_canary(api)
        isvc = await eventually(
            lambda: (i := api.get(ISVC))["spec"]["predictor"].get("canaryTrafficPercent") and i,
            "the canary on the InferenceService",
        )
    assert (status["canaryVersion"], status["canaryWeight"]) == ("v-i1", 10)
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == (
        "s3://models/registry/versions/v-i1/model"
    )
    assert isvc["spec"]["predictor"]["model"]["modelFormat"] == {"name": "huggingface"}
    assert status["iterations"][0]["metrics"] == {"pair_accuracy": 0.8}
    reasons = {e["reason"] for e in await call(api.list, EVENTS)}
    assert {"MetricsRecorded", "CanaryStarted"} <= reasons


async def test_good_metrics_promote_the_canary(
    kmock: kmock.KubernetesEmulator, api: KubeClient
) -> None:
    from prometheus_client import REGISTRY

    promotions = (
        REGISTRY.get_sample_value("codejury_operator_actions_total", {"action": "Promote"}) or 0.0
    )
    async with operator(str(kmock.url).rstrip("/")):
        status = await start_canary(api)
        # what a dashboard shows: the run in Canary at its first step, on iteration 1
        await eventually(lambda: gauge("codejury_run_phase", phase="Canary") == 1.0, "gauge")
        assert gauge("codejury_run_phase", phase="Training") == 0.0
        assert gauge("codejury_run_canary_weight_percent") == 10.0
        assert gauge("codejury_run_iteration") == 1.0
        since = status["stepStartedAt"]
        await call(publish_traffic, api, since, stable=(400, 200), canary=(400, 210))
        status = await eventually(
            lambda: (s := status_of(api)).get("canaryWeight") == 50 and s, "the 50% step"
        )
        # The counts restart with the step: the exporter counts from its start.
        await call(publish_traffic, api, status["stepStartedAt"], (400, 200), (400, 205))
        status = await eventually(
            lambda: (s := status_of(api)).get("phase") == "Completed" and s, "the promotion"
        )
        isvc = await call(api.get, ISVC)
        await eventually(
            lambda: gauge("codejury_run_phase", phase="Completed") == 1.0, "the Completed gauge"
        )
    assert gauge("codejury_run_phase", phase="Canary") == 0.0
    assert gauge("codejury_run_canary_weight_percent") == 0.0
    assert (
        REGISTRY.get_sample_value("codejury_operator_actions_total", {"action": "Promote"})
        == promotions + 1
    )
    assert (
        REGISTRY.get_sample_value("codejury_operator_reconciles_total", {"outcome": "ok"}) or 0
    ) > 0
    assert status["stableVersion"] == "v-i1" and status.get("canaryVersion") is None
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]
    assert isvc["spec"]["predictor"]["model"]["storageUri"].endswith("/versions/v-i1/model")
    kinds = [d["kind"] for d in status["history"]]
    assert kinds[-4:] == ["CanaryStarted", "CanaryAdvanced", "Promoted", "Completed"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"


# ~5 s; the rollback is the canary analysis' decision (tests/unit/control), its objects
# the builders' (test_operator_builders); good metrics keep the kopf path in the default lane
@pytest.mark.slow
async def test_bad_metrics_roll_the_canary_back_with_the_reason(
    kmock: kmock.KubernetesEmulator, api: KubeClient
) -> None:
    async with operator(str(kmock.url).rstrip("/")):
        status = await start_canary(api)
        since = status["stepStartedAt"]
        await call(publish_traffic, api, since, stable=(400, 200), canary=(400, 100))
        status = await eventually(
            lambda: (s := status_of(api)).get("phase") == "Completed" and s, "the rollback"
        )
        isvc = await call(api.get, ISVC)
        events = await call(api.list, EVENTS)
    assert status.get("stableVersion") is None  # the version from before the run serves on
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 0
    rolled = status["history"][-2]
    assert rolled["kind"] == "RolledBack" and "canary pass rate 0.250" in rolled["reason"]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "CanaryRolledBack")
    assert "canary pass rate 0.250 (100/400)" in degraded["message"]
    (warning,) = [e for e in events if e["reason"] == "RolledBack"]
    assert warning["type"] == "Warning" and "stable 0.500" in warning["message"]
    assert status["iterations"][0]["outcome"] == "RolledBack"


async def test_deleting_the_run_deletes_its_jobs(
    kmock: kmock.KubernetesEmulator, api: KubeClient
) -> None:
    async with operator(str(kmock.url).rstrip("/")):
        await call(api.create, Ref(RUN.api_version, RUN.plural, NS), run_body())
        await eventually(lambda: jobs_of(api), "the training Job")
        await eventually(
            lambda: api.get(RUN)["metadata"].get("finalizers"), "the operator's finalizer"
        )
        await eventually(lambda: gauge("codejury_run_phase", phase="Training") == 1.0, "gauge")
        await call(api.delete, RUN)
        await eventually(lambda: api.find(RUN) is None, "the run to go")
        assert await call(jobs_of, api) == []
    # a deleted run's series go with it
    assert gauge("codejury_run_phase", phase="Training") is None
    assert gauge("codejury_run_iteration") is None


# Slow lane (14 s): two kopf runs; the reconcile tests keep the no-second-job rule.
@pytest.mark.slow
async def test_a_restarted_operator_goes_on_from_the_status_without_a_second_job(
    kmock: kmock.KubernetesEmulator, api: KubeClient
) -> None:
    url = str(kmock.url).rstrip("/")
    async with operator(url):
        status = await start_canary(api)
    patches_before = len(kmock[kmock.resource("serving.kserve.io/v1beta1/inferenceservices")])
    async with operator(url):
        # The restarted operator re-applies the saved split and waits on the same step.
        await eventually(
            lambda: (
                len(kmock[kmock.resource("serving.kserve.io/v1beta1/inferenceservices")])
                > patches_before
            ),
            "the saved canary re-applied",
        )
        await asyncio.sleep(0.6)  # a few ticks
        assert (await call(status_of, api))["canaryWeight"] == 10
        since = status["stepStartedAt"]
        await call(publish_traffic, api, since, stable=(400, 200), canary=(400, 210))
        status = await eventually(
            lambda: (s := status_of(api)).get("canaryWeight") == 50 and s, "the 50% step"
        )
    jobs = await call(jobs_of, api)
    assert [j["metadata"]["name"] for j in jobs] == ["nightly-i1-a1"]
    assert status["phase"] == "Canary" and status["iteration"] == 1
    started = [d for d in status["history"] if d["kind"] == "CanaryStarted"]
    assert len(started) == 1
