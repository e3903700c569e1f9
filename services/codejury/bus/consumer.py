"""The consumer loop every CodeJury stage runs on: decode, handle, publish, then commit.

Delivery is at least once and nothing is lost:

1. a polled record is decoded into an ``Event``; a record that does not decode goes to
   ``<topic>.dlq`` at once (retrying cannot fix bytes); a letter keeps the record's value
   whole unless that would not fit one record, then its head (its error says so);
2. an event whose id was already processed is dropped (idempotence by event id);
3. the handler runs; an exception is retried with exponential backoff up to
   ``handler_max_attempts`` (a ``PermanentError`` is not retried), then the record and
   the error go to the dead-letter topic and the loop carries on; ``on_dead_letter``
   may add replies to publish then (a stage answers the request it gives up on, so a
   caller waiting on it hears the error instead of its deadline);
4. the handler's outputs are published with ids derived from the input's id, so a re-run
   after a crash yields the same ids and the next stage drops the repeats;
5. only after the broker has acknowledged every output and dead letter are the ids
   recorded as processed and the offsets committed; this happens at the end of each
   polled batch and at least every ``commit_interval_ms`` within one, so slow handlers
   (a generation takes seconds) commit as they go.

A polled batch is handled in arrival order (record timestamps across partitions, each
partition's own order kept); with ``concurrency`` > 1, that many records at a time (for
handlers that mostly wait), a partition's offsets committed only up to its first
unfinished record.

``request_stop`` (wired to SIGTERM/SIGINT by ``install_signal_handlers``) lets the
in-flight records finish, commits, and returns.
"""

from __future__ import annotations

import enum
import heapq
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from google.protobuf import message
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata

from codejury.bus.admin import security_options, unavailable
from codejury.bus.envelope import Event, Outgoing, deadline_of, derived_event_id, unwrap
from codejury.bus.errors import EnvelopeError, PublishError
from codejury.bus.processed import MemoryProcessedIds, ProcessedIds
from codejury.bus.producer import EventProducer, check_fits, record_room
from codejury.bus.spans import consumer_span_attributes
from codejury.bus.topics import dlq
from codejury.core import metrics
from codejury.core.errors import PermanentError, TemporaryError
from codejury.core.logging import get_logger
from codejury.core.settings import BusSettings
from codejury.core.signals import set_on_signals
from codejury.core.tracing import NO_TRACING, Span, Tracing, carrier_of
from codejury.proto.v1 import events_pb2

log = get_logger(__name__)

Handler = Callable[[Event], Iterable[Outgoing]]
# What to publish when an event is dead-lettered, e.g. an answer to whoever waits on it.
DeadLetterReply = Callable[[Event, BaseException], Iterable[Outgoing]]

_MAX_ERROR_CHARS = 4000
_TRIM_NOTE_BYTES = 256  # room for the note a trimmed dead letter adds to its error


@dataclass
class ConsumerStats:
    """What a consumer did, for logs, the CLI and tests."""

    handled: int = 0
    duplicates: int = 0
    expired: int = 0
    dead_lettered: int = 0
    published: int = 0
    retries: int = 0
    commits: int = 0


#: The metric's outcome label for each ``ConsumerStats`` field that counts events.
_OUTCOME_LABELS = {
    "handled": "handled",
    "duplicates": "duplicate",
    "expired": "expired",
    "dead_lettered": "dead_lettered",
}


@dataclass
class _Pending:
    """Records handled since the last commit."""

    offsets: dict[TopicPartition, OffsetAndMetadata] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    count: int = 0
    # Per partition of the polled batch, the first offset not yet committed: where a replay
    # starts. Partitions the batch had not reached yet count too (their records were
    # fetched, so the consumer's position is past them).
    resume: dict[TopicPartition, int] = field(default_factory=dict)

    def settled(self) -> _Pending:
        """The next ``_Pending`` once these records were committed."""
        resume = {**self.resume, **{tp: meta.offset for tp, meta in self.offsets.items()}}
        return _Pending(resume=resume)


class _Abandoned(Exception):
    """Stop was requested while a record waited to be retried: leave it uncommitted."""


class _Mark(enum.Enum):
    ABANDONED = "abandoned"  # a record's outcome: _Abandoned was raised


_ABANDONED = _Mark.ABANDONED
# A record's outcome: its event id once handled (None: it had none, or was a duplicate),
# _ABANDONED, or the PublishError that stopped it.
_Outcome = str | PublishError | _Mark | None


def arrival_order(batch: dict[TopicPartition, list[ConsumerRecord]]) -> list[ConsumerRecord]:
    """A polled batch's records by their timestamps, each partition's in its own order:
    a request on the batch's last partition is not handled after later ones on the first
    (the poll groups records by partition)."""
    return list(heapq.merge(*batch.values(), key=lambda record: record.timestamp))


class EventConsumer:
    """Runs ``handler`` over ``topics`` as a member of ``group_id``."""

    def __init__(
        self,
        settings: BusSettings,
        *,
        group_id: str,
        topics: Sequence[str],
        handler: Handler,
        name: str,
        processed: ProcessedIds | None = None,
        producer: EventProducer | None = None,
        on_dead_letter: DeadLetterReply | None = None,
        drop_expired: bool = False,
        tracing: Tracing = NO_TRACING,
        concurrency: int = 1,
    ) -> None:
        if not topics:
            raise ValueError("topics: give at least one topic to consume")
        if concurrency < 1:
            raise ValueError(f"concurrency: at least 1, not {concurrency}")
        self._settings = settings
        self.group_id = group_id
        self.topics = tuple(topics)
        self._handler = handler
        self._on_dead_letter = on_dead_letter
        # A request-path stage: an event past its envelope's deadline has nobody waiting
        # for its answer (the front door said DEADLINE_EXCEEDED), so it is not handled.
        self._drop_expired = drop_expired
        self.name = name
        self._processed = (
            processed
            if processed is not None
            else MemoryProcessedIds(settings.processed_ids_capacity)
        )
        # a span per event, the child of the span that published it (its traceparent
        # header); what the handler publishes carries this span's (the producer's headers)
        self._tracing = tracing
        self._own_producer = producer is None
        self._producer = producer or EventProducer(settings, name=name, tracing=tracing)
        self._stop = threading.Event()
        self.stats = ConsumerStats()
        # guards the stats and the claims on event ids (handlers may run in a pool)
        self._lock = threading.Lock()
        # Events handled at once, from one polled batch: for handlers that mostly wait (on
        # sandbox workers, on a model server), so one slow event does not idle the others.
        self._concurrency = concurrency
        self._pool = (
            ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name)
            if concurrency > 1
            else None
        )
        try:
            self._consumer = KafkaConsumer(
                *self.topics,
                bootstrap_servers=settings.bootstrap_servers,
                client_id=f"{settings.client_id}-{name}",
                group_id=group_id,
                enable_auto_commit=False,
                fetch_max_wait_ms=settings.fetch_max_wait_ms,
                auto_offset_reset="earliest",
                session_timeout_ms=settings.session_timeout_ms,
                heartbeat_interval_ms=settings.heartbeat_interval_ms,
                max_poll_records=settings.max_poll_records,
                max_poll_interval_ms=settings.max_poll_interval_ms,
                request_timeout_ms=max(
                    settings.request_timeout_ms, settings.session_timeout_ms + 5000
                ),
                bootstrap_timeout_ms=max(1000, int(settings.connect_timeout_s * 1000)),
                **security_options(settings),
            )
        except KafkaError as exc:
            if self._own_producer:
                self._producer.close()
            raise unavailable(settings, exc) from exc

    # -- control ---------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the in-flight record, commit, and leave ``run``. Not from a signal handler
        (``Event.set`` takes a lock): ``install_signal_handlers`` is the signal path."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT request a graceful stop (main thread only)."""

        set_on_signals(
            self._stop,
            on_signal=lambda signum: log.info(
                "consumer.stop_requested", consumer=self.name, signal=signum
            ),
        )

    # -- the loop --------------------------------------------------------------------

    def run(
        self, *, max_records: int | None = None, idle_timeout_s: float | None = None
    ) -> ConsumerStats:
        """Consume until stopped, ``max_records`` records were settled, or idle too long.

        A record counts as settled when it was handled, dropped as a duplicate or
        dead-lettered, and its offset committed.
        """
        log.info("consumer.started", consumer=self.name, group=self.group_id, topics=self.topics)
        settled = 0
        last_activity = time.monotonic()
        try:
            while not self._stop.is_set():
                if max_records is not None and settled >= max_records:
                    break
                if idle_timeout_s is not None and time.monotonic() - last_activity > idle_timeout_s:
                    break
                limit = None if max_records is None else max_records - settled
                batch = self._consumer.poll(
                    timeout_ms=self._settings.poll_timeout_ms,
                    max_records=limit,
                )
                if not batch:
                    continue
                last_activity = time.monotonic()
                self._record_lag(batch)
                settled += self._process_batch(batch)
        finally:
            self._close()
        log.info("consumer.stopped", consumer=self.name, **vars(self.stats))
        return self.stats

    def _count(self, topic: str, outcome: str) -> None:
        """One event finished with ``outcome`` (a ``ConsumerStats`` field): counted in the
        stats and in ``codejury_consumer_events_total``."""
        with self._lock:
            setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        metrics.EVENTS.labels(self.name, topic, _OUTCOME_LABELS[outcome]).inc()

    def _record_lag(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Each polled partition's lag behind the broker, counting this batch as consumed
        (the fetch response carried the high watermark)."""
        for tp, records in batch.items():
            highwater = self._consumer.highwater(tp)
            if highwater is not None and records:
                lag = max(0, highwater - (records[-1].offset + 1))
                metrics.CONSUMER_LAG.labels(self.name, tp.topic, str(tp.partition)).set(lag)

    def _process_batch(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> int:
        """Handle a polled batch in arrival order, ``concurrency`` records at a time,
        settling (flush, record ids, commit) at least every ``commit_interval_ms`` so a
        crash mid-batch redoes little, and at the end."""
        pending = _Pending(resume={tp: rs[0].offset for tp, rs in batch.items() if rs})
        records = arrival_order(batch)
        claimed: set[str] = set()
        settled = 0
        last_settle = time.monotonic()
        interval_s = self._settings.commit_interval_ms / 1000
        for start in range(0, len(records), self._concurrency):
            if self._stop.is_set():
                break  # checked between records: the in-flight ones always finish
            chunk = records[start : start + self._concurrency]
            blocked: set[TopicPartition] = set()
            for record, done in zip(chunk, self._run_chunk(chunk, claimed), strict=True):
                tp = TopicPartition(record.topic, record.partition)
                if isinstance(done, PublishError):
                    # The producer refused to queue an output (its buffer, the broker):
                    # replay from the batch's first unsettled records, as when a flush
                    # fails (derived ids drop what did get through).
                    self._rewind(pending, done)
                    return settled
                if done is _ABANDONED:
                    blocked.add(tp)  # uncommitted: delivered again
                    continue
                if done:
                    pending.ids.append(done)
                if tp not in blocked:  # a partition's offsets commit in order only
                    pending.offsets[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
                    pending.count += 1
            if blocked:
                break  # stop was requested while a record waited to be retried
            if time.monotonic() - last_settle >= interval_s:
                if not self._settle(pending):
                    return settled
                settled += pending.count
                pending = pending.settled()
                last_settle = time.monotonic()
        if pending.count and self._settle(pending):
            settled += pending.count
        return settled

    def _run_chunk(self, chunk: Sequence[ConsumerRecord], claimed: set[str]) -> list[_Outcome]:
        """Each record's outcome, in the chunk's order."""

        def one(record: ConsumerRecord) -> _Outcome:
            try:
                return self._process(record, claimed)
            except PublishError as exc:
                return exc
            except _Abandoned:
                return _ABANDONED

        if self._pool is None:  # concurrency 1: chunks of one record
            return [one(record) for record in chunk]
        return list(self._pool.map(one, chunk))

    def _settle(self, pending: _Pending) -> bool:
        """Wait for the broker's acks, then record ids and commit. False: replay later."""
        try:
            self.stats.published += self._producer.flush()
        except PublishError as exc:
            # Outputs may be lost: rewind and replay (same derived ids, so no duplicates
            # survive downstream). Later records of this poll are re-fetched after the seek.
            self._rewind(pending, exc)
            return False
        self._processed.add_all(pending.ids)
        try:
            # kafka-python retries a commit "until it completes" unless given a timeout:
            # through a rebalance (a killed member's session running out) that held a
            # stage past its stop for a minute. Bounded, the loop sees the stop.
            self._consumer.commit(pending.offsets, timeout_ms=self._settings.request_timeout_ms)
            self.stats.commits += 1
        except (CommitFailedError, KafkaTimeoutError) as exc:
            # The group rebalanced mid-batch, or the commit did not complete in time: the
            # partition's next owner (or this consumer) re-delivers, ids dedupe it.
            log.warning("consumer.commit_failed", consumer=self.name, error=str(exc))
        return True

    def _rewind(self, pending: _Pending, exc: PublishError) -> None:
        log.warning("consumer.publish_failed", consumer=self.name, error=str(exc))
        for tp, offset in pending.resume.items():
            self._consumer.seek(tp, offset)
        self._stop.wait(exc.delay_s)

    def _process(self, record: ConsumerRecord, claimed: set[str]) -> str | None:
        """Handle one record; returns its event id once handled (None if it had none).
        ``claimed``: the ids of the batch's records handled or being handled."""
        try:
            envelope, payload = unwrap(record.value)
        except EnvelopeError as exc:
            self._dead_letter(record, exc, attempts=0)
            return None
        if not self._claim(envelope.event_id, claimed):
            self._count(record.topic, "duplicates")
            log.debug("consumer.duplicate", consumer=self.name, event_id=envelope.event_id)
            return None
        # Every log line while this event is handled names its trace: one Solve is one
        # trace id across the front door and every stage's log (and, traced, one trace).
        with (
            structlog.contextvars.bound_contextvars(trace_id=envelope.trace_id),
            self._tracing.span(
                f"process {record.topic}",
                kind="consumer",
                remote_parent=carrier_of(record.headers),
                trace_id=envelope.trace_id,
                # built for every event: only when traced
                attributes=consumer_span_attributes(
                    record, envelope, payload, group_id=self.group_id, stage=self.name
                )
                if self._tracing.enabled
                else None,
            ) as span,
        ):
            outcome = self._handle(record, envelope, payload, span)
            span.set({"codejury.outcome": outcome})
        return envelope.event_id

    def _claim(self, event_id: str, claimed: set[str]) -> bool:
        """False when the event was processed already, or is in this batch twice."""
        with self._lock:
            if event_id in self._processed or event_id in claimed:
                return False
            claimed.add(event_id)
            return True

    def _handle(
        self,
        record: ConsumerRecord,
        envelope: events_pb2.Envelope,
        payload: message.Message,
        span: Span,
    ) -> str:
        """Handle one decoded event and queue its outputs; returns its outcome (the
        ``codejury_consumer_events_total`` label)."""
        deadline = deadline_of(envelope)
        if self._drop_expired and deadline is not None and deadline < datetime.now(UTC):
            self._count(record.topic, "expired")
            log.info(
                "consumer.expired",
                consumer=self.name,
                trace_id=envelope.trace_id,
                late_s=round((datetime.now(UTC) - deadline).total_seconds(), 3),
            )
            return "expired"
        event = Event(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            envelope=envelope,
            payload=payload,
        )
        started = time.monotonic()
        outputs, failure = self._handle_with_retries(record, event, span)
        took_s = time.monotonic() - started
        metrics.HANDLING_SECONDS.labels(self.name, record.topic).observe(took_s)
        if failure is not None:  # dead-lettered: do not handle it again
            span.fail(f"dead-lettered: {type(failure).__name__}: {failure}"[:_MAX_ERROR_CHARS])
            outputs = self._dead_letter_replies(event, failure)
        for index, out in enumerate(outputs):
            self._producer.publish(
                out.topic,
                out.payload,
                key=out.key,
                event_id=derived_event_id(envelope.event_id, index),
                trace_id=envelope.trace_id,
                causation_id=envelope.event_id,
                deadline=deadline,
            )
        span.set({"codejury.outputs": len(outputs)})
        if failure is not None:
            return "dead_lettered"
        self._count(record.topic, "handled")
        log.info(
            "consumer.handled",
            consumer=self.name,
            topic=record.topic,
            key=record.key.decode(errors="replace") if record.key else None,
            outputs=len(outputs),
            ms=round(took_s * 1000, 1),
        )
        return "handled"

    def _dead_letter_replies(self, event: Event, failure: BaseException) -> list[Outgoing]:
        if self._on_dead_letter is None:
            return []
        try:
            return list(self._on_dead_letter(event, failure))
        except Exception:  # the record is in the DLQ already; a failed reply only costs it
            log.exception("consumer.dead_letter_reply_failed", consumer=self.name)
            return []

    def _handle_with_retries(
        self, record: ConsumerRecord, event: Event, span: Span
    ) -> tuple[list[Outgoing], BaseException | None]:
        """The handler's outputs, or no outputs and the error it was dead-lettered with."""
        attempts = 0
        max_attempts = self._settings.handler_max_attempts
        while True:
            attempts += 1
            try:
                outputs = list(self._handler(event))
                # Every output must fit a record before any is published: one that cannot
                # is a permanent failure of this event (dead-lettered once, answered), not
                # a publish error replayed forever or one that ends the loop.
                for out in outputs:
                    check_fits(out.topic, out.payload)
                return outputs, None
            except PermanentError as exc:
                self._dead_letter(record, exc, attempts=attempts)
                return [], exc
            except Exception as exc:
                if attempts >= max_attempts:
                    self._dead_letter(record, exc, attempts=attempts)
                    return [], exc
                delay = min(
                    self._settings.retry_backoff_s * 2 ** (attempts - 1),
                    self._settings.retry_backoff_max_s,
                )
                if isinstance(exc, TemporaryError):
                    delay = min(max(delay, exc.delay_s), self._settings.retry_backoff_max_s)
                with self._lock:
                    self.stats.retries += 1
                metrics.RETRIES.labels(self.name, record.topic).inc()
                span.event("retry", {"attempt": attempts, "error": repr(exc)[:_MAX_ERROR_CHARS]})
                log.warning(
                    "consumer.retry",
                    consumer=self.name,
                    event_id=event.event_id,
                    attempt=attempts,
                    delay_s=delay,
                    error=repr(exc),
                )
                if self._stop.wait(delay):
                    raise _Abandoned from exc

    def _dead_letter(self, record: ConsumerRecord, exc: BaseException, *, attempts: int) -> None:
        error = "".join(traceback.format_exception_only(exc)).strip()[-_MAX_ERROR_CHARS:]
        letter = events_pb2.DeadLetter(
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            key=record.key or b"",
            value=record.value or b"",
            error=error,
            error_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
            attempts=attempts,
            consumer_group=self.group_id,
        )
        letter.failed_at.GetCurrentTime()
        over = -record_room(letter)
        if over > 0:
            # A record just under the limit that fails is over it once wrapped in a letter:
            # keep the value's head (and say so) rather than fail the loop on it at each replay
            value = record.value or b""
            kept = max(0, len(value) - over - _TRIM_NOTE_BYTES)
            letter.value = value[:kept]
            letter.error += (
                f"\n(the record's value was {len(value):,} bytes, too large for a dead letter "
                f"with it: this one keeps its first {kept:,})"
            )
        self._producer.publish(
            dlq(record.topic),
            letter,
            key=record.key.decode(errors="replace") if record.key else None,
        )
        self._count(record.topic, "dead_lettered")
        metrics.DEAD_LETTERS.labels(self.name, record.topic, type(exc).__name__).inc()
        log.error(
            "consumer.dead_lettered",
            consumer=self.name,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempts=attempts,
            error=error,
        )

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        try:
            if self._own_producer:
                self._producer.close()
        finally:
            self._consumer.close(autocommit=False, timeout_ms=self._settings.request_timeout_ms)
            self._processed.close()
