"""The traffic exporter writes the run's ConfigMap from the same meter the local runtime
uses, so the operator's canary decision equals the local runtime's on the same traffic."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from codejury.bus.envelope import Event, wrap
from codejury.bus.topics import FEEDBACK, SOLVE_COMPLETED
from codejury.control.observations import Observations
from codejury.control.reconcile import reconcile
from codejury.control.spec import parse_spec
from codejury.control.status import Phase, RunStatus
from codejury.proto.v1 import events_pb2
from codejury.runtime.meter import TrafficMeter
from codejury_operator.conditions import status_patch
from codejury_operator.exporter import TrafficExporter
from codejury_operator.kube import KubeClient, Ref
from codejury_operator.traffic import ConfigMapTrafficSource

pytestmark = pytest.mark.asyncio

NS = "ml"
RUNS = Ref("codejury.io/v1alpha1", "selftrainingruns", NS)
STEP = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SPEC = parse_spec(
    {
        "generator": "/models/gen",
        "rewardModelBackbone": "minilm",
        "datasets": ["mbxp"],
        "canary": {"steps": [10, 50, 100], "minSamples": 20, "margin": 0.05},
    }
)


def _feed(meter: TrafficMeter, version: str, n: int, passes: int, at: datetime) -> None:
    for i in range(n):
        request = f"{version}-{i}"
        for payload, topic in (
            (
                events_pb2.SolveCompleted(request_id=request, reranker_version=version),
                SOLVE_COMPLETED,
            ),
            (
                events_pb2.Feedback(
                    request_id=request,
                    problem_id="P",
                    language="python",
                    chosen=True,
                    reranker_version=version,
                    label=events_pb2.FEEDBACK_LABEL_PASSED
                    if i < passes
                    else events_pb2.FEEDBACK_LABEL_FAILED,
                ),
                FEEDBACK,
            ),
        ):
            envelope = wrap(payload, producer="test", created_at=at)
            meter.on_event(Event(topic, 0, i, None, envelope, payload))


@pytest.mark.parametrize(("canary_passes", "action"), [(16, "SetCanary"), (4, "Rollback")])
async def test_the_operator_decides_on_the_exported_counts_as_the_local_runtime_does(
    api: KubeClient, canary_passes: int, action: str
) -> None:
    status = RunStatus(
        phase=Phase.CANARY,
        iteration=1,
        training_attempt=1,
        canary_version="v2",
        canary_step=0,
        canary_weight=10,
        step_started_at=STEP,
    )
    body = {
        "apiVersion": "codejury.io/v1alpha1",
        "kind": "SelfTrainingRun",
        "metadata": {"name": "nightly", "namespace": NS, "uid": "u-1"},
        "spec": {},
        "status": status_patch(status),
    }
    await asyncio.to_thread(api.create, RUNS, body)
    meter = TrafficMeter()
    _feed(meter, "v1", 40, 20, STEP + timedelta(seconds=5))  # served before the run: stable
    _feed(meter, "v2", 20, canary_passes, STEP + timedelta(seconds=5))
    _feed(meter, "v2", 30, 0, STEP - timedelta(minutes=5))  # before the step: not counted

    now = STEP + timedelta(minutes=1)
    data = await asyncio.to_thread(TrafficExporter(api, meter, NS, "nightly").export_once, now)
    assert json.loads(data["canary"])["labelled"] == 20
    assert json.loads(data["stable"]) == {
        "errors": 0,
        "labelled": 40,
        "p99_latency_ms": None,
        "passed": 20,
        "requests": 40,
    }

    exported = await asyncio.to_thread(ConfigMapTrafficSource(api).traffic, NS, "nightly", status)
    local = meter.traffic(STEP, "v1", "v2")
    assert exported == local
    in_cluster = reconcile(SPEC, status, Observations(now=now, traffic=exported))
    on_one_machine = reconcile(SPEC, status, Observations(now=now, traffic=local))
    assert in_cluster == on_one_machine
    # 16/20 vs 20/40 passes: the next step; 4/20: rolled back with the rates in the reason.
    kinds = [type(a).__name__ for a in in_cluster.actions]
    assert action in kinds and ("Rollback" in kinds) == (action == "Rollback")
    configmap = await asyncio.to_thread(api.get, Ref("v1", "configmaps", NS, "nightly-traffic"))
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == "u-1"
