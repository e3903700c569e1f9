"""Feedback events as store rows, and ids recorded only after the rows are on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from codejury.bus.envelope import Event, wrap
from codejury.bus.processed import MemoryProcessedIds
from codejury.proto.v1 import domain_pb2, events_pb2
from codejury.training.errors import StoreWriteError, TrainingDataError
from codejury.training.feedback import (
    DurableProcessedIds,
    FeedbackBuffer,
    make_handler,
    row_from_feedback,
)
from codejury.training.records import LabelledCandidate, Source
from codejury.training.store import TrainingStore


def feedback(
    label: int = events_pb2.FEEDBACK_LABEL_FAILED,
    status: int | None = domain_pb2.FAILED,
    *,
    score: float = 0.7,
) -> events_pb2.Feedback:
    message = events_pb2.Feedback(
        request_id="req-1",
        problem_id="MBPP/2",
        language="python",
        candidate=domain_pb2.Candidate(
            candidate_id="c-1",
            problem_id="MBPP/2",
            completion="    return 1\n",
            source=domain_pb2.CANDIDATE_SOURCE_GENERATOR,
        ),
        score=domain_pb2.Score(candidate_id="c-1", score=score, model_version="rr-1"),
        reranker_version="rr-1",
        label=label,  # type: ignore[arg-type]
        prompt="def f(x):\n",
    )
    if status is not None:
        message.result.CopyFrom(domain_pb2.ExecutionResult(candidate_id="c-1", status=status))  # type: ignore[arg-type]
    return message


def test_a_labelled_feedback_becomes_a_row() -> None:
    row = row_from_feedback(feedback(status=domain_pb2.TIMEOUT), iteration=2)
    assert row is not None
    assert (row.problem_id, row.language, row.program) == ("MBPP/2", "python", "    return 1\n")
    assert (row.status, row.passed, row.source, row.iteration) == (
        "TIMEOUT",
        False,
        Source.GENERATOR,
        2,
    )
    assert (row.score, row.score_version, row.request_id) == (0.7, "rr-1", "req-1")
    assert row.prompt == "def f(x):\n"  # a user's problem needs no catalogue to become pairs
    passed = row_from_feedback(feedback(events_pb2.FEEDBACK_LABEL_PASSED, domain_pb2.PASSED))
    assert passed is not None and passed.passed


def test_unlabelled_feedback_and_sandbox_errors_are_never_rows() -> None:
    assert row_from_feedback(feedback(events_pb2.FEEDBACK_LABEL_UNLABELLED, None)) is None
    assert row_from_feedback(feedback(events_pb2.FEEDBACK_LABEL_UNSPECIFIED, None)) is None
    # Even mislabelled: a SANDBOX_ERROR result is ours, not the program's.
    assert row_from_feedback(feedback(status=domain_pb2.SANDBOX_ERROR)) is None


def test_a_label_that_contradicts_its_result_is_refused() -> None:
    with pytest.raises(TrainingDataError, match="label FEEDBACK_LABEL_PASSED contradicts"):
        row_from_feedback(feedback(events_pb2.FEEDBACK_LABEL_PASSED, domain_pb2.FAILED))


def _event(message: events_pb2.Feedback, offset: int) -> Event:
    envelope = wrap(message, producer="test")
    return Event(
        topic="codejury.feedback", partition=0, offset=offset, key=b"k",
        envelope=envelope, payload=message,
    )  # fmt: skip


class _FailingStore(TrainingStore):
    def append(self, rows: object) -> Path | None:
        raise StoreWriteError("disk full")


def test_event_ids_are_recorded_only_after_the_rows_are_written(tmp_path: Path) -> None:
    store = TrainingStore(tmp_path / "store")
    buffer = FeedbackBuffer(store)
    processed = DurableProcessedIds(MemoryProcessedIds(100), buffer)
    handle = make_handler(buffer, iteration_of=lambda version: 3)
    assert processed  # empty, yet not falsy: EventConsumer uses `processed or Memory...`
    events = [
        _event(feedback(), 0),
        _event(feedback(events_pb2.FEEDBACK_LABEL_UNLABELLED, None), 1),
    ]
    for event in events:
        assert list(handle(event)) == []
    assert store.parts() == []  # buffered, not yet written
    processed.add_all([e.event_id for e in events])
    assert len(store.parts()) == 1 and buffer.rows_written == 1
    (row,) = store.rows()
    assert isinstance(row, LabelledCandidate) and row.iteration == 3
    assert all(e.event_id in processed for e in events)

    failing = FeedbackBuffer(_FailingStore(tmp_path / "broken"))
    guarded = DurableProcessedIds(MemoryProcessedIds(100), failing)
    make_handler(failing)(_event(feedback(), 2))
    with pytest.raises(StoreWriteError):
        guarded.add_all(["later"])
    assert "later" not in guarded  # not recorded: the consumer will not commit it
