"""core.tracing with the real OpenTelemetry SDK (its in-memory exporter): parents from
carriers, trace ids that agree with the envelope's, sampling by trace id, the log
binding; and off, nothing at all."""

from __future__ import annotations

import subprocess
import sys
import uuid

import grpc
import pytest
import structlog
from codejury.core.errors import ConfigurationError, InvalidArgumentError
from codejury.core.grpc import make_server
from codejury.core.settings import TracingSettings
from codejury.core.tracing import NO_TRACING, carrier_of, open_tracing
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import SecretStr

from tests.tracing import hex_parent, hex_span, hex_trace, memory_tracing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


def traceparent(trace: str = TRACE, span: str = PARENT_SPAN, flags: str = "01") -> str:
    return f"00-{trace}-{span}-{flags}"


def test_off_by_default_everything_is_the_shared_no_op() -> None:
    tracing = open_tracing(TracingSettings(), "solve")
    assert tracing is NO_TRACING and not tracing.enabled
    with tracing.span("x", remote_parent={"traceparent": traceparent()}) as span:
        assert span.trace_id is None
        span.set({"a": 1})
        span.fail("ignored")
        assert tracing.headers() == {} and tracing.kafka_headers() == []
        assert tracing.current_trace_id() is None
    assert tracing.span("y") is tracing.span("z")  # one shared context manager: no cost


def test_off_never_imports_opentelemetry() -> None:
    """The sandbox image may lack the packages; off, nothing of them is loaded."""
    code = (
        "import sys\n"
        "from codejury.core.settings import TracingSettings\n"
        "from codejury.core.tracing import open_tracing\n"
        "t = open_tracing(TracingSettings(), 'worker')\n"
        "with t.span('x', remote_parent={}) as s: s.set({'a': 1})\n"
        "t.headers(); t.annotate({'a': 1})\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_without_the_packages_tracing_stays_off_and_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # import fails
    with structlog.testing.capture_logs() as logs:
        tracing = open_tracing(TracingSettings(exporter="otlp"), "generation")
    assert tracing is NO_TRACING
    (warning,) = [e for e in logs if e["event"] == "tracing.unavailable"]
    assert warning["log_level"] == "warning"
    assert "codejury[tracing]" in warning["fix"] and "EXPORTER=none" in warning["fix"]


def test_a_server_span_continues_the_callers_traceparent_and_children_nest() -> None:
    with memory_tracing("solve") as memory:
        tracing = memory.tracing
        with tracing.span(
            "codejury.v1.Solve/Solve",
            kind="server",
            remote_parent={"traceparent": traceparent()},
            attributes={"codejury.problem_id": "p"},
        ) as server:
            assert server.trace_id == TRACE == tracing.current_trace_id()
            # what a record published here carries: this span as the parent
            carrier = carrier_of(tracing.kafka_headers())
            assert carrier["traceparent"].split("-")[1] == TRACE
            with tracing.span("inner") as inner:
                assert inner.trace_id == TRACE
        with tracing.span(
            "process t", kind="consumer", remote_parent=carrier, trace_id=TRACE
        ) as consumer:
            assert consumer.trace_id == TRACE
        spans = {s.name: s for s in memory.spans()}
    solve, inner_span = spans["codejury.v1.Solve/Solve"], spans["inner"]
    process = spans["process t"]
    assert {hex_trace(s) for s in spans.values()} == {TRACE}
    assert solve.kind == SpanKind.SERVER and hex_parent(solve) == PARENT_SPAN
    assert solve.parent is not None and solve.parent.is_remote
    assert hex_parent(inner_span) == hex_span(solve)
    assert process.kind == SpanKind.CONSUMER and hex_parent(process) == hex_span(solve)
    assert dict(solve.attributes or {})["codejury.problem_id"] == "p"
    assert solve.resource.attributes["service.name"] == "codejury-solve"


def test_an_untraced_producer_s_event_still_joins_the_envelope_s_trace() -> None:
    """No traceparent header (the publisher traces nothing): the span takes the
    envelope's trace id, under a parent nobody exported, so logs and traces agree."""
    trace = uuid.uuid4().hex
    with memory_tracing("execution") as memory:
        with memory.tracing.span("process t", kind="consumer", remote_parent={}, trace_id=trace):
            pass
        # no trace id at all: a new trace (a root)
        with memory.tracing.span("root", kind="consumer", remote_parent={}, trace_id=None):
            pass
        phantom, root = memory.spans()
    assert hex_trace(phantom) == trace and hex_parent(phantom) != ""
    assert hex_trace(root) != trace and root.parent is None


def test_sampling_is_by_trace_id_and_a_caller_s_decision_is_kept() -> None:
    with memory_tracing("solve", sample_ratio=0.0) as memory:
        with memory.tracing.span("new", kind="server", remote_parent={}) as new:
            # not recorded, but the id exists and travels, marked not sampled
            assert new.trace_id is not None and len(new.trace_id) == 32
            flags = int(memory.tracing.headers()["traceparent"].rsplit("-", 1)[1], 16)
            assert not flags & 1  # the sampled bit
        with memory.tracing.span(
            "asked", kind="server", remote_parent={"traceparent": traceparent(flags="01")}
        ):
            pass
        assert [s.name for s in memory.spans()] == ["asked"]


def test_log_lines_inside_a_span_name_its_trace_and_span() -> None:
    with memory_tracing("solve") as memory:
        with memory.tracing.span("s", remote_parent={"traceparent": traceparent()}):
            bound = structlog.contextvars.get_contextvars()
        (span,) = memory.spans()
    assert bound["trace_id"] == TRACE and bound["span_id"] == hex_span(span)
    assert "trace_id" not in structlog.contextvars.get_contextvars()


def test_otlp_headers_that_are_not_key_value_are_refused_without_echoing_them() -> None:
    settings = TracingSettings(exporter="otlp", otlp_headers=SecretStr("api-key=ok,SECRETVALUE"))
    with pytest.raises(ConfigurationError, match="entry 2 is not key=value") as caught:
        open_tracing(settings, "solve")
    assert "SECRETVALUE" not in str(caught.value)


# -- the gRPC server span: every RPC of a server made with tracing ----------------------


def _server(tracing: object) -> tuple[object, grpc.Channel]:
    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        if request == b"bad":
            raise InvalidArgumentError("request: bad is refused")
        if request == b"boom":
            raise RuntimeError("internal detail")
        return request

    def register(server: grpc.Server) -> str:
        handler = grpc.unary_unary_rpc_method_handler(echo)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.Echo", {"Echo": handler}),)
        )
        return "test.Echo"  # what the server serves, for reflection

    served = make_server([register], host="127.0.0.1", port=0, max_workers=2, tracing=tracing)  # type: ignore[arg-type]
    served.start()
    return served, grpc.insecure_channel(f"127.0.0.1:{served.port}")


def test_every_rpc_is_a_server_span_with_its_code_and_probes_are_not() -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with memory_tracing("generation") as memory:
        served, channel = _server(memory.tracing)
        try:
            echo = channel.unary_unary("/test.Echo/Echo")
            assert echo(b"hi", timeout=5, metadata=[("traceparent", traceparent())]) == b"hi"
            for payload, code in ((b"bad", grpc.StatusCode.INVALID_ARGUMENT), (b"boom", None)):
                with pytest.raises(grpc.RpcError) as failed:
                    echo(payload, timeout=5)
                assert failed.value.code() == (code or grpc.StatusCode.INTERNAL)
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        finally:
            channel.close()
            served.stop(grace_s=1)  # type: ignore[attr-defined]
        spans = memory.spans()
    assert [s.name for s in spans] == ["test.Echo/Echo"] * 3  # the health check: none
    ok, refused, crashed = spans
    assert ok.kind == SpanKind.SERVER and hex_trace(ok) == TRACE
    assert hex_parent(ok) == PARENT_SPAN
    attributes = dict(ok.attributes or {})
    assert attributes["rpc.system"] == "grpc" and attributes["rpc.method"] == "Echo"
    assert attributes["rpc.grpc.status_code"] == 0
    # the caller's mistake is not the server's error; a crash is
    assert dict(refused.attributes or {})["rpc.grpc.status_code"] == 3
    assert refused.status.status_code == StatusCode.UNSET
    assert crashed.status.status_code == StatusCode.ERROR
    assert dict(crashed.attributes or {})["error.type"] == "RuntimeError"
    assert ok.parent is not None and refused.parent is None  # no traceparent: a new trace
