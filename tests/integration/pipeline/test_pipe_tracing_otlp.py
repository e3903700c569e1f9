"""One Solve is one trace across processes: the real embedded pipeline (tansu, a Celery
worker, a process per service, KServe for the reranker, tiny models) with
``tracing.exporter=otlp``, every process exporting with the real OTLP/gRPC exporter to a
receiver in this test.

The receiver (``codejury.pipeline.trace_receiver``) is a stand-in for an OpenTelemetry
Collector: none installs here (no Debian or PyPI package). It serves the collector's own
``TraceService.Export`` from opentelemetry-proto, so what it decodes is what a collector
would have received."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from codejury.core.settings import Settings, with_group
from codejury.pipeline.bench import problems
from codejury.pipeline.embedded import SERVICES, EmbeddedPipeline
from codejury.pipeline.front_door import TRACE_HEADER
from codejury.pipeline.trace_receiver import ReceivedSpan, TraceReceiver
from codejury.proto.v1 import domain_pb2, services_pb2, services_pb2_grpc

N = 2
CALLER_SPAN = "00f067aa0ba902b7"
pytestmark = pytest.mark.slow  # its own embedded deployment: ~40 s to start on 2 cores


@pytest.fixture(scope="module")
def receiver() -> Iterator[TraceReceiver]:
    with TraceReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def traced(pipeline_settings: Settings, receiver: TraceReceiver) -> Iterator[EmbeddedPipeline]:
    settings = with_group(
        with_group(pipeline_settings, "tracing", exporter="otlp", otlp_endpoint=receiver.endpoint),
        "metrics",
        port=None,  # the other module's deployment may hold those ports
    )
    settings = settings.model_copy(update={"run_dir": pipeline_settings.run_dir / "traced"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        with EmbeddedPipeline(settings) as running:
            yield running


def test_one_solve_is_one_trace_across_every_process(
    traced: EmbeddedPipeline, receiver: TraceReceiver
) -> None:
    trace = uuid.uuid4().hex
    (problem,) = problems(1)  # with tests: the candidates run in the sandbox
    with grpc.insecure_channel(traced.solve_address) as channel:
        response, call = services_pb2_grpc.SolveStub(channel).Solve.with_call(
            services_pb2.SolveRequest(problem=problem, n=N, deadline_s=240),
            timeout=270,
            metadata=[("traceparent", f"00-{trace}-{CALLER_SPAN}-01")],
        )
    assert dict(call.trailing_metadata())[TRACE_HEADER] == trace
    assert len(response.candidates) == N

    def complete(spans: list[ReceivedSpan]) -> bool:
        mine = [s for s in spans if s.trace_id == trace]
        names = {(s.service, s.name) for s in mine}
        runs = [s for s in mine if s.name == "sandbox.run"]
        return (
            len(runs) == N
            and {
                ("codejury-solve", "codejury.v1.Solve/Solve"),
                ("codejury-reranking", "inference.GRPCInferenceService/ModelInfer"),
            }
            <= names
            and {s.service for s in mine}
            >= {
                "codejury-generation",
                "codejury-execution",
                "codejury-reranking",
            }
        )

    # each process exports in batches (every few seconds)
    spans = [s for s in receiver.wait_for(complete, timeout_s=60) if s.trace_id == trace]
    by_id = {s.span_id: s for s in spans}
    names = sorted((s.service, s.name) for s in spans)
    assert complete(spans), names

    (server,) = [s for s in spans if s.service == "codejury-solve"]
    assert server.kind == "SERVER" and server.parent_span_id == CALLER_SPAN
    assert server.attributes["codejury.problem_id"] == problem.problem_id
    assert server.attributes["codejury.reranker_version"] == response.reranker_version

    def stage(service: str) -> ReceivedSpan:
        (span,) = [s for s in spans if s.service == service and s.kind == "CONSUMER"]
        return span

    gen, exe, rnk = (stage(f"codejury-{name}") for name in SERVICES)
    assert gen.parent_span_id == server.span_id
    assert exe.parent_span_id == gen.span_id
    assert rnk.parent_span_id == exe.span_id
    for span, name in ((gen, "generation"), (exe, "execution"), (rnk, "reranking")):
        assert span.attributes["codejury.stage"] == f"{name}-stage"
        assert span.attributes["codejury.problem_id"] == problem.problem_id
        assert span.attributes["codejury.language"] == "python"
        assert span.attributes["codejury.outcome"] == "handled"
        assert span.status != "ERROR"
    # the sandbox runs: Celery tasks in the worker's pool, children of the execution stage
    runs = [s for s in spans if s.name == "sandbox.run"]
    assert {s.service for s in runs} == {"codejury-worker"}
    assert {s.parent_span_id for s in runs} == {exe.span_id}
    candidates = {c.candidate_id for c in response.candidates}
    assert {s.attributes["codejury.candidate_id"] for s in runs} == candidates
    statuses = {r.candidate_id: domain_pb2.ExecutionStatus.Name(r.status) for r in response.results}
    traced_statuses = {
        s.attributes["codejury.candidate_id"]: s.attributes["codejury.status"] for s in runs
    }
    assert traced_statuses == statuses
    # the reranker call: a client span of the reranking stage's, with the version it got
    (infer,) = [s for s in spans if s.name == "inference.GRPCInferenceService/ModelInfer"]
    assert infer.kind == "CLIENT" and by_id[infer.parent_span_id] == rnk
    assert infer.attributes["codejury.reranker_version"] == response.reranker_version
    # every stage's log names the trace and the span the line was logged in
    for name, span in zip(SERVICES, (gen, exe, rnk), strict=True):
        lines = traced.services[name].log_path.read_text().splitlines()
        handled = [line for line in lines if "consumer.handled" in line and trace in line]
        assert handled and all(span.span_id in line for line in handled), name
