"""Typed publishing of protobuf events, wrapped in the envelope, acks=all, idempotent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf import message
from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata

from codejury.bus.admin import security_options, unavailable
from codejury.bus.envelope import wrap
from codejury.bus.errors import PublishError, RecordTooLargeError
from codejury.core.settings import BusSettings
from codejury.core.tracing import NO_TRACING, Tracing
from codejury.proto.v1 import events_pb2

# kafka-python's max_request_size default (1 MiB), which brokers' message.max.bytes
# matches by default: the limit a record must stay under, envelope and key included.
MAX_RECORD_BYTES = 1_048_576
# What the envelope, the key and the record batch add around a payload (measured: under
# 300 bytes; kept wide so the check is never the one that lets a record through).
_RECORD_OVERHEAD_BYTES = 4096


def record_room(payload: message.Message) -> int:
    """Bytes ``payload`` could still grow by and fit one record (negative: over by that)."""
    return MAX_RECORD_BYTES - _RECORD_OVERHEAD_BYTES - payload.ByteSize()


def check_fits(topic: str, payload: message.Message) -> None:
    """RecordTooLargeError when ``payload`` could not be published as one record."""
    size = payload.ByteSize()
    if size + _RECORD_OVERHEAD_BYTES > MAX_RECORD_BYTES:
        raise RecordTooLargeError(
            f"the {type(payload).__name__} for {topic} is {size:,} bytes, over the "
            f"{MAX_RECORD_BYTES:,}-byte Kafka record limit: ask for fewer candidates (n) or "
            "tests that print less"
        )


class EventProducer:
    """Publishes envelopes; ``flush`` waits for every acknowledgement or raises.

    ``publish`` only queues: call ``flush`` (or use ``publish_now``) before treating a
    record as written, e.g. before committing the offset that produced it. With
    ``tracing`` on, each record's headers carry the publishing span's W3C
    ``traceparent``: the consumer's span becomes its child.
    """

    def __init__(self, settings: BusSettings, *, name: str, tracing: Tracing = NO_TRACING) -> None:
        self._settings = settings
        self.name = name
        self.tracing = tracing
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=settings.bootstrap_servers,
                client_id=f"{settings.client_id}-{name}",
                acks="all",
                enable_idempotence=True,
                retries=5,
                request_timeout_ms=settings.request_timeout_ms,
                max_block_ms=int(settings.produce_timeout_s * 1000),
                bootstrap_timeout_ms=max(1000, int(settings.connect_timeout_s * 1000)),
                linger_ms=2,
                **security_options(settings),
            )
        except KafkaError as exc:
            raise unavailable(settings, exc) from exc
        self._pending: list[tuple[str, FutureRecordMetadata]] = []

    def publish(
        self,
        topic: str,
        payload: message.Message,
        *,
        key: str | None = None,
        event_id: str | None = None,
        trace_id: str | None = None,
        causation_id: str = "",
        deadline: datetime | None = None,
    ) -> events_pb2.Envelope:
        """Queue ``payload`` for ``topic`` in a new envelope and return the envelope;
        RecordTooLargeError, before anything is queued, when it cannot fit a record."""
        check_fits(topic, payload)
        env = wrap(
            payload,
            producer=self.name,
            event_id=event_id,
            # the envelope's trace is the publishing span's: logs and traces agree
            trace_id=trace_id or self.tracing.current_trace_id(),
            causation_id=causation_id,
            deadline=deadline,
        )
        self.send_raw(
            topic,
            env.SerializeToString(),
            key=key.encode() if key else None,
            headers=self.tracing.kafka_headers(),
        )
        return env

    def send_raw(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Queue bytes as they are (dead letters, and tests that need bad records)."""
        try:
            future = self._producer.send(topic, value=value, key=key, headers=list(headers))
        except KafkaError as exc:
            raise PublishError(f"could not queue a record for {topic}: {exc}") from exc
        self._pending.append((topic, future))

    def flush(self) -> int:
        """Wait until every queued record is acknowledged; returns how many were."""
        pending, self._pending = self._pending, []
        try:
            self._producer.flush(timeout=self._settings.produce_timeout_s)
        except KafkaError as exc:
            raise PublishError(
                f"broker at {self._settings.bootstrap_servers} did not acknowledge "
                f"{len(pending)} record(s) within {self._settings.produce_timeout_s:g}s: {exc}"
            ) from exc
        for topic, future in pending:
            if not future.is_done:
                raise PublishError(f"record for {topic} still unacknowledged after flush")
            if future.failed():
                raise PublishError(
                    f"broker rejected a record for {topic}: {future.exception}"
                ) from future.exception
        return len(pending)

    def publish_now(
        self,
        topic: str,
        payload: message.Message,
        *,
        key: str | None = None,
        trace_id: str | None = None,
        deadline: datetime | None = None,
    ) -> events_pb2.Envelope:
        """Publish one event and wait for its acknowledgement."""
        env = self.publish(topic, payload, key=key, trace_id=trace_id, deadline=deadline)
        self.flush()
        return env

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._producer.close(timeout=self._settings.produce_timeout_s)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
