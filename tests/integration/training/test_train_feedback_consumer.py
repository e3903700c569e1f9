"""The feedback consumer against a real tansu broker: rows on disk before offsets commit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from codejury.bus.producer import EventProducer
from codejury.core.settings import BusSettings, Settings, load_settings
from codejury.proto.v1 import domain_pb2, events_pb2
from codejury.training.errors import StoreWriteError
from codejury.training.feedback import feedback_consumer
from codejury.training.records import LabelledCandidate
from codejury.training.store import TrainingStore
from kafka import KafkaConsumer, TopicPartition

LABELS = [
    (events_pb2.FEEDBACK_LABEL_PASSED, domain_pb2.PASSED),
    (events_pb2.FEEDBACK_LABEL_FAILED, domain_pb2.FAILED),
    (events_pb2.FEEDBACK_LABEL_FAILED, domain_pb2.TIMEOUT),
    (events_pb2.FEEDBACK_LABEL_UNLABELLED, domain_pb2.SANDBOX_ERROR),
    (events_pb2.FEEDBACK_LABEL_UNLABELLED, None),
]


def _publish(bus: BusSettings, topic: str, requests: int) -> int:
    """Publish ``requests`` x 5 feedback events (3 labelled, 2 unlabelled each)."""
    sent = 0
    with EventProducer(bus, name="test-feedback") as producer:
        for r in range(requests):
            for i, (label, status) in enumerate(LABELS):
                candidate_id = f"req-{r}/c{i}"
                feedback = events_pb2.Feedback(
                    request_id=f"req-{r}",
                    problem_id=f"MBPP/{r + 1}",
                    language="python",
                    candidate=domain_pb2.Candidate(
                        candidate_id=candidate_id, completion=f"    return {i}\n"
                    ),
                    score=domain_pb2.Score(candidate_id=candidate_id, score=float(i)),
                    reranker_version="rr-0",
                    label=label,
                )
                if status is not None:
                    feedback.result.CopyFrom(
                        domain_pb2.ExecutionResult(candidate_id=candidate_id, status=status)
                    )
                producer.publish(topic, feedback, key=f"req-{r}")
                sent += 1
        producer.flush()
    return sent


def _settings(bus: BusSettings, tmp_path: Path) -> Settings:
    return load_settings({"run_dir": tmp_path / "run", "bus": bus.model_dump()})


def _committed(bus: BusSettings, topic: str, group_id: str) -> int:
    probe = KafkaConsumer(bootstrap_servers=bus.bootstrap_servers, group_id=group_id)
    try:
        partitions = probe.partitions_for_topic(topic) or set()
        return sum(probe.committed(TopicPartition(topic, p)) or 0 for p in partitions)
    finally:
        probe.close()


class _BrokenStore(TrainingStore):
    def append(self, rows: object) -> Path | None:
        raise StoreWriteError("disk full (test)")


def test_rows_are_written_before_offsets_are_committed(
    bus: BusSettings, fresh_topics: Callable[..., list[str]], group_id: str, tmp_path: Path
) -> None:
    (topic,) = fresh_topics("feedback")
    sent = _publish(bus, topic, 8)
    settings = _settings(bus, tmp_path)

    # A store that cannot write: the consumer stops and commits nothing.
    broken, _ = feedback_consumer(
        settings, _BrokenStore(tmp_path / "broken"), topics=(topic,), group_id=group_id
    )
    with pytest.raises(StoreWriteError):
        broken.run(max_records=sent, idle_timeout_s=60)
    assert _committed(bus, topic, group_id) == 0

    # The same group with a working store gets every event again and stores the labels.
    store = TrainingStore(tmp_path / "store")
    consumer, buffer = feedback_consumer(settings, store, topics=(topic,), group_id=group_id)
    stats = consumer.run(max_records=sent, idle_timeout_s=60)
    assert stats.handled == sent and stats.dead_lettered == 0
    assert _committed(bus, topic, group_id) == sent
    rows = store.rows()
    assert len(rows) == 8 * 3 == buffer.rows_written
    assert all(isinstance(r, LabelledCandidate) for r in rows)
    assert sorted({r.status for r in rows}) == ["FAILED", "PASSED", "TIMEOUT"]
    assert 1 <= len(store.parts()) <= buffer.parts_written
    assert not list(store.parts_dir.glob(".*"))  # no temporary part left

    # Redelivery (a new group reads everything again) adds no row to a snapshot.
    snapshot = store.snapshot()
    again, _ = feedback_consumer(settings, store, topics=(topic,), group_id=group_id + "-again")
    again.run(max_records=sent, idle_timeout_s=60)
    assert store.snapshot().snapshot_id == snapshot.snapshot_id
