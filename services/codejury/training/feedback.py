"""The feedback consumer: ``codejury.feedback`` events become rows of the training store.

Rows are written durably *before* the consumer commits the events' offsets, in one
Parquet part per settled batch rather than one per event:

- the handler turns a ``Feedback`` into a row (or nothing, for UNLABELLED events: a
  sandbox error or an unexecuted candidate is never a label) and buffers it;
- ``EventConsumer`` settles a batch by recording the batch's event ids as processed and
  *then* committing the offsets (see ``codejury.bus.consumer``, step 5). The
  ``ProcessedIds`` given to it here writes the buffered rows as one fsync'd part first,
  and records the ids only once the part is on disk. If the write fails, the exception
  stops the consumer before the commit, and the events are delivered again.

A redelivered event yields the same row (same content, same row id), and snapshots keep
each row id once, so at-least-once delivery leaves no duplicate in the training data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from codejury.bus.consumer import EventConsumer
from codejury.bus.envelope import Event, Outgoing
from codejury.bus.processed import MemoryProcessedIds, ProcessedIds
from codejury.bus.topics import FEEDBACK
from codejury.core.logging import get_logger
from codejury.core.settings import Settings
from codejury.proto.v1 import domain_pb2, events_pb2
from codejury.training.errors import TrainingDataError
from codejury.training.records import LabelledCandidate, Source
from codejury.training.store import TrainingStore

log = get_logger(__name__)

_SOURCES = {
    domain_pb2.CANDIDATE_SOURCE_GENERATOR: Source.GENERATOR,
    domain_pb2.CANDIDATE_SOURCE_MUTATION: Source.MUTATION,
    domain_pb2.CANDIDATE_SOURCE_CANONICAL: Source.CANONICAL,
}
_UNLABELLED_STATUSES = (domain_pb2.SANDBOX_ERROR, domain_pb2.EXECUTION_STATUS_UNSPECIFIED)


def row_from_feedback(
    feedback: events_pb2.Feedback, *, iteration: int = 0
) -> LabelledCandidate | None:
    """The stored row of one feedback event, or None when it carries no label."""
    if feedback.label not in (events_pb2.FEEDBACK_LABEL_PASSED, events_pb2.FEEDBACK_LABEL_FAILED):
        return None
    if feedback.HasField("result"):
        if feedback.result.status in _UNLABELLED_STATUSES:
            return None  # our failure, whatever the label claims
        status = domain_pb2.ExecutionStatus.Name(feedback.result.status)
    else:
        status = "PASSED" if feedback.label == events_pb2.FEEDBACK_LABEL_PASSED else "FAILED"
    if (status == "PASSED") != (feedback.label == events_pb2.FEEDBACK_LABEL_PASSED):
        raise TrainingDataError(
            f"feedback for candidate {feedback.candidate.candidate_id!r}: label "
            f"{events_pb2.FeedbackLabel.Name(feedback.label)} contradicts result status "
            f"{status}: the reranking stage must derive the label from the result"
        )
    has_score = feedback.HasField("score")
    return LabelledCandidate(
        problem_id=feedback.problem_id or feedback.candidate.problem_id,
        language=feedback.language,
        program=feedback.candidate.completion,
        prompt=feedback.prompt,
        status=status,
        source=_SOURCES.get(feedback.candidate.source, Source.GENERATOR),
        iteration=iteration,
        score=feedback.score.score if has_score else None,
        score_version=(feedback.score.model_version if has_score else "")
        or feedback.reranker_version,
        request_id=feedback.request_id,
        candidate_id=feedback.candidate.candidate_id,
    )


class FeedbackBuffer:
    """Rows handled since the last settle; ``flush`` writes them as one durable part."""

    def __init__(self, store: TrainingStore) -> None:
        self.store = store
        self._rows: list[LabelledCandidate] = []
        self._lock = threading.Lock()
        self.rows_written = 0
        self.parts_written = 0

    def add(self, rows: Iterable[LabelledCandidate]) -> None:
        with self._lock:
            self._rows.extend(rows)

    def flush(self) -> None:
        """Write the buffered rows (StoreWriteError: they stay buffered)."""
        with self._lock:
            if not self._rows:
                return
            self.store.append(self._rows)
            self.rows_written += len(self._rows)
            self.parts_written += 1
            self._rows = []


class DurableProcessedIds:
    """Records event ids as processed only after their rows are on disk."""

    def __init__(self, inner: ProcessedIds, buffer: FeedbackBuffer) -> None:
        self._inner = inner
        self._buffer = buffer

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._inner

    def add_all(self, event_ids: Iterable[str]) -> None:
        self._buffer.flush()  # raises before any id is recorded or offset committed
        self._inner.add_all(event_ids)

    def __len__(self) -> int:
        return len(self._inner)

    def __bool__(self) -> bool:
        # EventConsumer picks its store with ``processed or MemoryProcessedIds(...)``: an
        # empty store must not read as "none given", or rows would never be flushed.
        return True

    def close(self) -> None:
        self._inner.close()


def make_handler(
    buffer: FeedbackBuffer, *, iteration_of: Callable[[str], int] | None = None
) -> Callable[[Event], Iterable[Outgoing]]:
    """The consumer handler: buffer the event's row; it publishes nothing."""

    def handle(event: Event) -> Iterable[Outgoing]:
        feedback = event.payload
        if not isinstance(feedback, events_pb2.Feedback):
            raise TrainingDataError(
                f"expected codejury.v1.Feedback on {event.topic}, got "
                f"{feedback.DESCRIPTOR.full_name}: only the reranking stage publishes there"
            )
        iteration = iteration_of(feedback.reranker_version) if iteration_of else 0
        row = row_from_feedback(feedback, iteration=iteration)
        if row is not None:
            buffer.add([row])
        return []

    return handle


def feedback_consumer(
    settings: Settings,
    store: TrainingStore,
    *,
    topics: tuple[str, ...] = (FEEDBACK,),
    group_id: str | None = None,
    iteration_of: Callable[[str], int] | None = None,
) -> tuple[EventConsumer, FeedbackBuffer]:
    """An ``EventConsumer`` that fills ``store`` from feedback events, and its buffer."""
    buffer = FeedbackBuffer(store)
    processed = DurableProcessedIds(MemoryProcessedIds(settings.bus.processed_ids_capacity), buffer)
    consumer = EventConsumer(
        settings.bus,
        group_id=group_id or settings.training.feedback_group_id,
        topics=topics,
        handler=make_handler(buffer, iteration_of=iteration_of),
        name="training-feedback",
        processed=processed,
    )
    return consumer, buffer


def registry_iterations(lookup: Callable[[str], int]) -> Callable[[str], int]:
    """``lookup`` (version id -> its manifest's iteration) cached, 0 for unknown versions."""
    cache: dict[str, int] = {}

    def iteration_of(version: str) -> int:
        if not version:
            return 0
        if version not in cache:
            try:
                cache[version] = lookup(version)
            except Exception as exc:  # an unknown or unreadable version: not the row's fault
                log.warning("feedback.unknown_version", version=version, error=str(exc))
                cache[version] = 0
        return cache[version]

    return iteration_of
