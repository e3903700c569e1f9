"""One Solve is one trace: the real front door and the real consumer loop of three
stages, on a real tansu broker, each with its own tracer (as each runs in its own process
in a deployment), spans to the SDK's in-memory exporter. The stages' handlers are played
by the test (the real ones, with models, sandbox and KServe, are traced end to end over
OTLP in test_pipe_tracing_otlp.py)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import grpc
import pytest
import structlog
from codejury.bus.consumer import EventConsumer
from codejury.bus.embedded import EmbeddedBroker
from codejury.bus.envelope import Event, Outgoing, unwrap
from codejury.bus.topics import SOLVE_COMPLETED, SOLVE_REQUESTED
from codejury.core.settings import BusSettings, Settings, TracingSettings
from codejury.core.tracing import Tracing, open_tracing
from codejury.pipeline.front_door import TRACE_HEADER, SolveFrontDoor
from codejury.proto.v1 import domain_pb2, events_pb2, services_pb2, services_pb2_grpc
from kafka import KafkaConsumer, TopicPartition
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from tests.integration.pipeline.conftest import front_door_settings
from tests.tracing import MemoryTracing, hex_parent, hex_span, hex_trace, memory_tracing

PROBLEM = domain_pb2.Problem(
    problem_id="add", language="python", prompt="def add(a, b):\n    ", tests="assert 1"
)
CALLER_SPAN = "00f067aa0ba902b7"


def generate(event: Event) -> list[Outgoing]:
    requested = event.payload
    assert isinstance(requested, events_pb2.SolveRequested)
    structlog.get_logger("test").info("played.generation")
    candidates = [domain_pb2.Candidate(candidate_id=f"{requested.request_id}-0", completion="a")]
    return [
        Outgoing(
            "generated",
            events_pb2.CandidatesGenerated(
                request_id=requested.request_id, problem=requested.problem, candidates=candidates
            ),
            key=requested.request_id,
        )
    ]


def execute(event: Event) -> list[Outgoing]:
    generated = event.payload
    assert isinstance(generated, events_pb2.CandidatesGenerated)
    results = [
        domain_pb2.ExecutionResult(candidate_id=c.candidate_id, status=domain_pb2.PASSED)
        for c in generated.candidates
    ]
    executed = events_pb2.CandidatesExecuted(
        request_id=generated.request_id,
        problem=generated.problem,
        candidates=generated.candidates,
        results=results,
    )
    return [Outgoing("executed", executed, key=generated.request_id)]


def rank(event: Event) -> list[Outgoing]:
    executed = event.payload
    assert isinstance(executed, events_pb2.CandidatesExecuted)
    completed = events_pb2.SolveCompleted(
        request_id=executed.request_id,
        problem=executed.problem,
        candidates=executed.candidates,
        results=executed.results,
        chosen_index=0,
        reranker_version="v0",
    )
    return [Outgoing(SOLVE_COMPLETED, completed, key=executed.request_id)]


@contextmanager
def stages(
    bus: BusSettings, topics: dict[str, str], tracers: dict[str, Tracing]
) -> Iterator[list[EventConsumer]]:
    """The three stages' real consumer loops in threads (fresh groups, so they start at
    the topics' beginning: other tests' requests pass through them too, in other traces)."""

    def routed(handler: Callable[[Event], list[Outgoing]]) -> Callable[[Event], list[Outgoing]]:
        def handle(event: Event) -> list[Outgoing]:
            return [
                Outgoing(topics.get(o.topic, o.topic), o.payload, o.key) for o in handler(event)
            ]

        return handle

    plan = (
        ("generation", SOLVE_REQUESTED, generate),
        ("execution", topics["generated"], execute),
        ("reranking", topics["executed"], rank),
    )
    consumers = [
        EventConsumer(
            bus,
            group_id=f"test-{name}-{uuid.uuid4().hex[:8]}",
            topics=[topic],
            handler=routed(handler),
            name=f"{name}-stage",
            tracing=tracers[name],
        )
        for name, topic, handler in plan
    ]
    threads = [threading.Thread(target=c.run, daemon=True) for c in consumers]
    for thread in threads:
        thread.start()
    try:
        yield consumers
    finally:
        for consumer in consumers:
            consumer.request_stop()
        for thread in threads:
            thread.join(timeout=30)


def solve(address: str, metadata: list[tuple[str, str]]) -> tuple[str, str]:
    """One Solve; its request id and the trace id the front door answered with."""
    request_id = f"traced-{uuid.uuid4().hex[:8]}"
    request = services_pb2.SolveRequest(problem=PROBLEM, n=1, deadline_s=120, request_id=request_id)
    with grpc.insecure_channel(address) as channel:
        response, call = services_pb2_grpc.SolveStub(channel).Solve.with_call(
            request, timeout=150, metadata=metadata
        )
    assert response.chosen.candidate_id == f"{request_id}-0"
    return request_id, dict(call.trailing_metadata())[TRACE_HEADER]


def record_headers(bus: BusSettings, topic: str, request_id: str) -> list[dict[str, bytes]]:
    """The headers of ``topic``'s records of ``request_id`` (partitions assigned, not
    joined: a group join on tansu takes seconds)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bus.bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    found: list[dict[str, bytes]] = []
    deadline = time.monotonic() + 30
    try:
        while not found and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    _, payload = unwrap(record.value)
                    if getattr(payload, "request_id", None) == request_id:
                        found.append(dict(record.headers))
    finally:
        consumer.close(autocommit=False)
    return found


@pytest.fixture
def settings(broker: EmbeddedBroker) -> Settings:
    return front_door_settings(broker, max_in_flight=4)


@pytest.fixture
def topics(fresh_topics: Callable[..., list[str]]) -> dict[str, str]:
    """The played stages' own topics between generation and reranking."""
    generated, executed = fresh_topics("generated", "executed")
    return {"generated": generated, "executed": executed}


@pytest.fixture
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """Every structlog line of every thread, with the context bound where it was logged."""
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        yield logs


# ~9 s; the slow lane's OTLP test checks the same trace across the real processes, and the
# default lane keeps the spans' parents and attributes in tests/unit/core/test_tracing.py
@pytest.mark.slow
def test_one_solve_is_one_trace_across_the_front_door_and_every_stage(
    settings: Settings, topics: dict[str, str], captured_logs: list[dict[str, Any]]
) -> None:
    generated, executed = topics["generated"], topics["executed"]
    caller_trace = uuid.uuid4().hex
    with ExitStack() as stack:
        memory: dict[str, MemoryTracing] = {
            name: stack.enter_context(memory_tracing(name))
            for name in ("solve", "generation", "execution", "reranking")
        }
        tracers = {name: m.tracing for name, m in memory.items()}
        door = stack.enter_context(SolveFrontDoor(settings, tracing=tracers["solve"]))
        stack.enter_context(stages(settings.bus, topics, tracers))
        request_id, trace = solve(
            f"127.0.0.1:{door.port}", [("traceparent", f"00-{caller_trace}-{CALLER_SPAN}-01")]
        )
        # a caller with no traceparent: a trace of its own, and its id is the span's
        other_request, other_trace = solve(f"127.0.0.1:{door.port}", [])
        spans = {name: m.spans() for name, m in memory.items()}
    assert trace == caller_trace and other_trace != caller_trace

    def of(name: str, trace_id: str) -> ReadableSpan:
        (span,) = [s for s in spans[name] if hex_trace(s) == trace_id]
        return span

    server = of("solve", trace)
    gen, exe, rnk = (of(name, trace) for name in ("generation", "execution", "reranking"))
    # the tree: caller -> Solve (server) -> each stage's event (consumer), in order
    assert server.name == "codejury.v1.Solve/Solve" and server.kind == SpanKind.SERVER
    assert hex_parent(server) == CALLER_SPAN
    assert hex_parent(gen) == hex_span(server)
    assert hex_parent(exe) == hex_span(gen)
    assert hex_parent(rnk) == hex_span(exe)
    solve_attributes = dict(server.attributes or {})
    assert solve_attributes["codejury.request_id"] == request_id
    assert solve_attributes["codejury.problem_id"] == "add"
    assert solve_attributes["codejury.reranker_version"] == "v0"
    assert solve_attributes["rpc.grpc.status_code"] == 0
    for span, stage, topic in (
        (gen, "generation-stage", SOLVE_REQUESTED),
        (exe, "execution-stage", generated),
        (rnk, "reranking-stage", executed),
    ):
        attributes = dict(span.attributes or {})
        assert span.kind == SpanKind.CONSUMER and span.name == f"process {topic}"
        assert span.resource.attributes["service.name"] == f"codejury-{stage.split('-')[0]}"
        assert attributes["codejury.stage"] == stage
        assert attributes["codejury.request_id"] == request_id
        assert attributes["codejury.problem_id"] == "add"
        assert attributes["codejury.language"] == "python"
        assert attributes["codejury.outcome"] == "handled"
        assert attributes["messaging.destination.name"] == topic
    # the other request: its own trace, rooted at the front door
    other = of("solve", other_trace)
    assert other.parent is None and of("reranking", other_trace).name == f"process {executed}"
    assert dict(of("generation", other_trace).attributes or {})["codejury.request_id"] == (
        other_request
    )
    # the records carry the publishing span: the generation stage's output names its span
    (headers,) = record_headers(settings.bus, generated, request_id)
    assert headers["traceparent"].decode().split("-")[1:3] == [trace, hex_span(gen)]
    # every log line of the request names its trace, and the span it was logged in
    handled = [
        line
        for line in captured_logs
        if line["event"] in ("consumer.handled", "played.generation")
        and line.get("trace_id") == trace
    ]
    assert {line.get("consumer", "played") for line in handled} == {
        "generation-stage",
        "execution-stage",
        "reranking-stage",
        "played",
    }
    by_stage = {"generation-stage": gen, "execution-stage": exe, "reranking-stage": rnk}
    for line in handled:
        span = by_stage.get(line.get("consumer", "generation-stage"))
        assert span is not None and line["span_id"] == hex_span(span)


# ~10 s; the default lane keeps tracing off by the unit tests (no-op, nothing imported) and
# the trace id in every stage's log by the end-to-end test
@pytest.mark.slow
def test_with_tracing_off_no_span_no_header_and_the_trace_id_still_flows(
    settings: Settings, topics: dict[str, str], captured_logs: list[dict[str, Any]]
) -> None:
    off = {
        name: open_tracing(TracingSettings(), name)
        for name in ("solve", "generation", "execution", "reranking")
    }
    assert not any(t.enabled for t in off.values())
    trace = uuid.uuid4().hex
    with (
        SolveFrontDoor(settings) as door,  # its own, from the settings: off by default
        stages(settings.bus, topics, off),
    ):
        assert not door.tracing.enabled
        request_id, answered = solve(
            f"127.0.0.1:{door.port}", [("traceparent", f"00-{trace}-{CALLER_SPAN}-01")]
        )
    assert answered == trace
    (headers,) = record_headers(settings.bus, topics["generated"], request_id)
    assert "traceparent" not in headers
    handled = [line for line in captured_logs if line["event"] == "consumer.handled"]
    assert {line["consumer"] for line in handled if line.get("trace_id") == trace} == {
        "generation-stage",
        "execution-stage",
        "reranking-stage",
    }
    assert not any("span_id" in line for line in captured_logs)
