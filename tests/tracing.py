"""Tracing for tests: a real SDK ``Tracing`` whose spans go to the SDK's own in-memory
exporter, read back after a flush."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from codejury.core.settings import TracingSettings
from codejury.core.tracing import Tracing, open_tracing
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@dataclass
class MemoryTracing:
    tracing: Tracing
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        """Every span ended so far (the batch processor flushed first)."""
        assert self.tracing.flush(10)
        return list(self.exporter.get_finished_spans())


@contextmanager
def memory_tracing(service: str, *, sample_ratio: float = 1.0) -> Iterator[MemoryTracing]:
    exporter = InMemorySpanExporter()
    tracing = open_tracing(
        TracingSettings(exporter="none", sample_ratio=sample_ratio), service, exporter=exporter
    )
    try:
        yield MemoryTracing(tracing, exporter)
    finally:
        tracing.close()


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def hex_span(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.span_id, "016x")


def hex_parent(span: ReadableSpan) -> str:
    return "" if span.parent is None else format(span.parent.span_id, "016x")
