"""An OTLP/gRPC trace receiver: where ``codejury bench pipeline --observability`` sends
its traced deployment's spans, and where the tracing tests read them back.

It serves the OpenTelemetry Collector's own ``TraceService.Export`` (from
``opentelemetry-proto``), so the services' real OTLP exporters send it exactly what they
would send a collector: the cost measured is the real cost, and what the tests assert on
is what went over the wire. It keeps the spans (or only counts them) and answers success;
no processing, no forwarding. A stand-in, because no OpenTelemetry Collector installs on
these machines (no Debian or PyPI package; building one from its Go modules takes longer
than the tests may).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from codejury.core.errors import CodeJuryError


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, as the receiver decoded it."""

    service: str  # the resource's service.name
    name: str
    kind: str  # SERVER, CLIENT, CONSUMER, PRODUCER, INTERNAL
    trace_id: str  # 32 hex
    span_id: str  # 16 hex
    parent_span_id: str  # 16 hex, "" for a root
    attributes: dict[str, Any] = field(default_factory=dict)
    status: str = "UNSET"  # UNSET, OK, ERROR
    status_message: str = ""


def _value(any_value: common_pb2.AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return None if kind is None else getattr(any_value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def decode(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    """The spans of one export request."""
    spans = []
    for resource_spans in request.resource_spans:
        service = str(_attributes(resource_spans.resource.attributes).get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=service,
                        name=span.name,
                        kind=trace_pb2.Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        attributes=_attributes(span.attributes),
                        status=trace_pb2.Status.StatusCode.Name(span.status.code).removeprefix(
                            "STATUS_CODE_"
                        ),
                        status_message=span.status.message,
                    )
                )
    return spans


class _Servicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: TraceReceiver) -> None:
        self._receiver = receiver

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._receiver.received(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class TraceReceiver:
    """Receives OTLP/gRPC trace exports on ``endpoint`` (loopback) from ``start`` to
    ``stop``. ``keep=False`` only counts spans (a benchmark's hours of them)."""

    def __init__(self, *, keep: bool = True, host: str = "127.0.0.1", port: int = 0) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self.count = 0  # spans received
        self.exports = 0  # Export calls answered
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _Servicer(self), self._server
        )
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise CodeJuryError(f"the trace receiver cannot listen on {host}:{port}")
        self.endpoint = f"http://{host}:{self.port}"

    def received(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        if self._keep:
            spans = decode(request)
            with self._lock:
                self._spans.extend(spans)
                self.count += len(spans)
                self.exports += 1
            return
        count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with self._lock:
            self.count += count
            self.exports += 1

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(
        self, done: Callable[[list[ReceivedSpan]], bool], *, timeout_s: float
    ) -> list[ReceivedSpan]:
        """The spans once ``done(spans)`` holds, or what came within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.spans()
            if done(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.1)

    def start(self) -> TraceReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=1).wait()

    def __enter__(self) -> TraceReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
