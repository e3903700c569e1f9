"""OpenTelemetry traces: one Solve is one trace across the front door, every stage, the
sandbox runs and the reranker calls.

A ``Tracing`` is built once per process (``open_tracing``, at the entry point, from
``settings.tracing``) and handed to what makes spans: gRPC servers (a server span per
RPC), the Kafka consumer (a consumer span per event), the producer (the W3C
``traceparent`` of the current span in every record's headers), the Celery fan-out (the
same in each task's headers) and the reranker's KServe client (in its gRPC metadata).
Each span's parent is the span that sent the message, so the stages of one Solve form
one tree under the front door's server span; the envelope's ``trace_id`` is that trace's
id, so logs and traces agree.

Off (``tracing.exporter=none``, the default, or the ``tracing`` extra not installed)
every call below returns at once without importing OpenTelemetry: ``span`` hands back one
shared no-op, ``headers`` an empty carrier. The trace ids of the envelope and the logs
work as before without it.

The SDK keeps its own state per ``Tracing`` (provider, sampler, exporter): two in one
process (the pipeline benchmark's deployments with tracing on and off) do not mix. What
is shared is OpenTelemetry's *current span*, a context variable, which is exactly what
makes a span started inside another its child.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import structlog

from codejury.core.errors import ConfigurationError
from codejury.core.logging import get_logger
from codejury.core.settings import TlsSettings, TracingSettings
from codejury.core.tls import channel_credentials

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler
    from opentelemetry.trace import Span as OtelSpan
    from opentelemetry.trace import Tracer

log = get_logger(__name__)

#: The W3C Trace Context keys a carrier (Kafka headers, gRPC metadata, Celery headers)
#: holds; nothing else is read from or written to them.
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_CARRIER_KEYS = (TRACEPARENT, TRACESTATE)

Kind = Literal["server", "client", "consumer", "producer", "internal"]
AttributeValue = str | bool | int | float
Attributes = Mapping[str, AttributeValue]

#: How to get the packages when tracing was asked for without them.
INSTALL_FIX = "install the 'tracing' extra (bin/setup does; or pip install 'codejury[tracing]')"


class Span(Protocol):
    """What code does with its span: the same calls whether tracing is on or off."""

    @property
    def trace_id(self) -> str | None:
        """32 hex digits; None when tracing is off."""

    def set(self, attributes: Attributes) -> None: ...

    def event(self, name: str, attributes: Attributes | None = None) -> None: ...

    def fail(self, description: str) -> None:
        """Mark the span's status ERROR with ``description`` (no exception needed)."""


class _NoSpan:
    trace_id = None

    def set(self, attributes: Attributes) -> None:
        pass

    def event(self, name: str, attributes: Attributes | None = None) -> None:
        pass

    def fail(self, description: str) -> None:
        pass


_NO_SPAN = _NoSpan()
# nullcontext is stateless: one instance serves every span of a process with tracing off.
_NO_SPAN_CONTEXT: contextlib.AbstractContextManager[Span] = contextlib.nullcontext(_NO_SPAN)


class _LiveSpan:
    __slots__ = ("_span", "trace_id")

    def __init__(self, span: OtelSpan) -> None:
        self._span = span
        context = span.get_span_context()
        self.trace_id: str | None = format(context.trace_id, "032x")

    def set(self, attributes: Attributes) -> None:
        self._span.set_attributes(attributes)

    def event(self, name: str, attributes: Attributes | None = None) -> None:
        self._span.add_event(name, attributes)

    def fail(self, description: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.set_status(Status(StatusCode.ERROR, description))


class Tracing:
    """This process's tracer, or none (``NO_TRACING``). Build it with ``open_tracing``."""

    def __init__(
        self,
        provider: TracerProvider | None = None,
        *,
        service: str = "",
        sampler: Sampler | None = None,
    ) -> None:
        self._provider = provider
        self.service = service
        self._sampler = sampler
        self._tracer: Tracer | None = (
            provider.get_tracer("codejury") if provider is not None else None
        )

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def span(
        self,
        name: str,
        *,
        kind: Kind = "internal",
        remote_parent: Mapping[str, str] | None = None,
        trace_id: str | None = None,
        attributes: Attributes | None = None,
    ) -> contextlib.AbstractContextManager[Span]:
        """A span for the ``with`` block, current inside it (so spans started there, and
        ``headers()``, are its children); its exceptions mark it ERROR.

        ``remote_parent``: a W3C carrier from another process (a record's headers, an
        RPC's metadata); None: a child of this thread's current span, if any. A carrier
        without a ``traceparent`` (a producer that traces nothing) and a ``trace_id`` (the
        envelope's) still puts the span in that trace, under a parent nobody exported."""
        if self._tracer is None:
            return _NO_SPAN_CONTEXT
        return self._live_span(
            self._tracer,
            name,
            kind=kind,
            remote_parent=remote_parent,
            trace_id=trace_id,
            attributes=attributes,
        )

    @contextlib.contextmanager
    def _live_span(
        self,
        tracer: Tracer,
        name: str,
        *,
        kind: Kind,
        remote_parent: Mapping[str, str] | None,
        trace_id: str | None,
        attributes: Attributes | None,
    ) -> Iterator[Span]:
        from opentelemetry.trace import SpanKind

        parent = None if remote_parent is None else self._context_of(remote_parent, trace_id)
        with tracer.start_as_current_span(
            name, context=parent, kind=SpanKind[kind.upper()], attributes=attributes
        ) as otel_span:
            span = _LiveSpan(otel_span)
            # every log line inside names the trace and the span: logs and traces meet
            span_id = format(otel_span.get_span_context().span_id, "016x")
            with structlog.contextvars.bound_contextvars(trace_id=span.trace_id, span_id=span_id):
                yield span

    def _context_of(self, carrier: Mapping[str, str], trace_id: str | None) -> Context:
        from opentelemetry import trace
        from opentelemetry.context import Context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        extracted = TraceContextTextMapPropagator().extract(carrier)
        if trace.get_current_span(extracted).get_span_context().is_valid:
            return extracted
        phantom = self._phantom_parent(trace_id)
        return Context() if phantom is None else trace.set_span_in_context(phantom)

    def _phantom_parent(self, trace_id: str | None) -> OtelSpan | None:
        """A remote parent in ``trace_id``'s trace, sampled as this process's sampler
        would sample that trace (by id, so every process agrees)."""
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.trace.sampling import Decision
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

        try:
            number = int(trace_id or "", 16)
        except ValueError:
            return None
        if not 0 < number < 1 << 128 or self._sampler is None:
            return None
        sampled = (
            self._sampler.should_sample(None, number, "").decision is Decision.RECORD_AND_SAMPLE
        )
        return NonRecordingSpan(
            SpanContext(
                trace_id=number,
                span_id=RandomIdGenerator().generate_span_id(),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
            )
        )

    def annotate(self, attributes: Mapping[str, Any]) -> None:
        """Set ``attributes`` (the empty ones left out) on this thread's current span: a
        span another layer started (the gRPC server span, in a servicer)."""
        if self._tracer is None:
            return
        from opentelemetry import trace

        trace.get_current_span().set_attributes(attributes_of(attributes))

    def headers(self) -> dict[str, str]:
        """The current span's W3C carrier (``traceparent``, maybe ``tracestate``) for a
        message or call leaving this process; empty when off or outside any span."""
        if self._tracer is None:
            return {}
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        return carrier

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        """``headers()`` as Kafka record headers."""
        return [(key, value.encode()) for key, value in self.headers().items()]

    def current_trace_id(self) -> str | None:
        """The trace id of this thread's current span (32 hex), or None (off, or none)."""
        if self._tracer is None:
            return None
        from opentelemetry import trace

        context = trace.get_current_span().get_span_context()
        return format(context.trace_id, "032x") if context.is_valid else None

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Export every ended span now (tests, and before a process exits)."""
        if self._provider is None:
            return True
        return self._provider.force_flush(int(timeout_s * 1000))

    def close(self) -> None:
        """Flush and stop exporting (a process that lives on, or a test)."""
        if self._provider is not None:
            self._provider.shutdown()


NO_TRACING = Tracing()


def carrier_of(headers: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """The W3C keys of a message's headers or an RPC's metadata, as text."""
    carrier = {}
    for key, value in headers or ():
        if key in _CARRIER_KEYS:
            carrier[key] = value.decode("latin-1") if isinstance(value, bytes) else value
    return carrier


def open_tracing(
    settings: TracingSettings,
    service: str,
    *,
    tls: TlsSettings | None = None,
    exporter: SpanExporter | None = None,
) -> Tracing:
    """This process's ``Tracing`` for component ``service`` (``solve``, ``generation``,
    ...; its spans' ``service.name`` is ``codejury-<service>``), or ``NO_TRACING`` when
    ``settings.exporter`` is none, or when the packages are missing (then said, with the
    fix: the process runs on untraced). ``exporter``: where spans go instead of the
    configured one (tests)."""
    if settings.exporter == "none" and exporter is None:
        return NO_TRACING
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        sink = exporter or _configured_exporter(settings, tls)
    except ImportError as exc:
        log.warning(
            "tracing.unavailable",
            exporter=settings.exporter,
            error=str(exc),
            fix=f"tracing stays off: {INSTALL_FIX}, or set CODEJURY_TRACING__EXPORTER=none",
        )
        return NO_TRACING
    from codejury import __version__

    root = TraceIdRatioBased(settings.sample_ratio)
    provider = TracerProvider(
        sampler=ParentBased(root),
        # OTEL_RESOURCE_ATTRIBUTES (e.g. deployment.environment=prod) adds to these
        resource=Resource.create(
            {
                "service.name": f"codejury-{service}",
                "service.namespace": "codejury",
                "service.version": __version__,
            }
        ),
    )
    # batched, from a thread of the SDK's: a span costs its caller microseconds, never
    # an export's round trip
    provider.add_span_processor(BatchSpanProcessor(sink))
    log.info(
        "tracing.on",
        service=f"codejury-{service}",
        exporter="custom" if exporter is not None else settings.exporter,
        endpoint=settings.otlp_endpoint if settings.exporter == "otlp" else None,
        sample_ratio=settings.sample_ratio,
    )
    return Tracing(provider, service=service, sampler=root)


def _configured_exporter(settings: TracingSettings, tls: TlsSettings | None) -> SpanExporter:
    """The settings' exporter (ImportError when its package is missing)."""
    if settings.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # stderr: a service's stdout carries its READY line to whoever started it
        return ConsoleSpanExporter(out=sys.stderr)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    credentials = None
    if settings.otlp_endpoint.startswith("https://") and tls is not None and tls.ca_file:
        credentials = channel_credentials(tls)
    return OTLPSpanExporter(
        endpoint=settings.otlp_endpoint, credentials=credentials, headers=_headers(settings)
    )


def _headers(settings: TracingSettings) -> dict[str, str] | None:
    if settings.otlp_headers is None:
        return None
    headers = {}
    for number, pair in enumerate(settings.otlp_headers.get_secret_value().split(","), 1):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            # the text is a secret: say where, never what
            raise ConfigurationError(
                f"tracing.otlp_headers: entry {number} is not key=value: write "
                "CODEJURY_TRACING__OTLP_HEADERS as key=value,key2=value2"
            )
        headers[key.strip().lower()] = value.strip()
    return headers


def attributes_of(values: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """``values`` without the empty ones (OpenTelemetry refuses None; '' says nothing)."""
    return {k: v for k, v in values.items() if v is not None and v != ""}


def grpc_metadata(tracing: Tracing) -> Sequence[tuple[str, str]]:
    """``tracing.headers()`` as gRPC call metadata."""
    return tuple(tracing.headers().items())
