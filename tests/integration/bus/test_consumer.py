"""The consumer loop against a real tansu broker."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from codejury.bus.consumer import EventConsumer
from codejury.bus.envelope import Event, Outgoing, deadline_of, unwrap
from codejury.bus.processed import SqliteProcessedIds
from codejury.bus.producer import MAX_RECORD_BYTES, EventProducer
from codejury.bus.topics import dlq
from codejury.core.errors import PermanentError
from codejury.core.settings import BusSettings
from codejury.proto.v1 import events_pb2
from kafka import KafkaConsumer, TopicPartition


def _publish_requests(
    bus: BusSettings, topic: str, count: int, prefix: str = "r", *, key: str | None = None
) -> list[str]:
    """``count`` requests; ``key``: all on one partition, in order (default: keyed by id)."""
    ids = []
    with EventProducer(bus, name="test-publisher") as producer:
        for i in range(count):
            request_id = f"{prefix}-{i}"
            producer.publish(
                topic, events_pb2.SolveRequested(request_id=request_id), key=key or request_id
            )
            ids.append(request_id)
        producer.flush()
    return ids


def _run_in_thread(consumer: EventConsumer) -> threading.Thread:
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    return thread


def test_2000_events_consumed_by_a_group_with_all_offsets_committed(
    bus: BusSettings, fresh_topics: Callable[..., list[str]], group_id: str
) -> None:
    (topic,) = fresh_topics("bulk")
    sent = _publish_requests(bus, topic, 2000)
    seen: list[Event] = []
    consumer = EventConsumer(
        bus, group_id=group_id, topics=[topic], handler=lambda e: seen.append(e) or [], name="bulk"
    )
    stats = consumer.run(max_records=2000, idle_timeout_s=60)

    got = [e.payload.request_id for e in seen]  # type: ignore[attr-defined]
    assert sorted(got) == sorted(sent)
    assert stats.handled == 2000 and stats.dead_lettered == 0

    # Every partition's committed offset is one past the last record the group saw.
    last: dict[int, int] = {}
    for e in seen:
        last[e.partition] = max(last.get(e.partition, -1), e.offset)
    probe = KafkaConsumer(bootstrap_servers=bus.bootstrap_servers, group_id=group_id)
    try:
        for partition, offset in last.items():
            assert probe.committed(TopicPartition(topic, partition)) == offset + 1
    finally:
        probe.close()


def test_poison_message_goes_to_dlq_with_its_error_and_the_rest_arrive(
    bus: BusSettings,
    fresh_topics: Callable[..., list[str]],
    group_id: str,
    collect: Callable[..., list],
) -> None:
    topic, out = fresh_topics("poison-in", "poison-out")
    sent = _publish_requests(bus, topic, 30)
    poison = "r-13"
    attempts: Counter[str] = Counter()

    def handler(event: Event) -> list[Outgoing]:
        request_id = event.payload.request_id  # type: ignore[attr-defined]
        attempts[request_id] += 1
        if request_id == poison:
            raise ValueError(f"cannot handle {request_id}")
        return [Outgoing(out, events_pb2.CandidatesGenerated(request_id=request_id))]

    consumer = EventConsumer(bus, group_id=group_id, topics=[topic], handler=handler, name="p")
    stats = consumer.run(max_records=30, idle_timeout_s=60)

    assert attempts[poison] == bus.handler_max_attempts  # retried, then dead-lettered
    assert stats.dead_lettered == 1 and stats.handled == 29
    outputs = collect([out], 29)
    assert sorted(unwrap(r.value)[1].request_id for r in outputs) == sorted(
        s for s in sent if s != poison
    )
    (letter_record,) = collect([dlq(topic)], 1)
    _, letter = unwrap(letter_record.value)
    assert isinstance(letter, events_pb2.DeadLetter)
    assert "ValueError: cannot handle r-13" in letter.error
    assert letter.attempts == bus.handler_max_attempts
    assert letter.source_topic == topic and letter.consumer_group == group_id
    # The original record travels unchanged: it can be replayed as it was.
    _, original = unwrap(letter.value)
    assert original.request_id == poison  # type: ignore[attr-defined]


def test_permanent_errors_are_not_retried(
    bus: BusSettings, fresh_topics: Callable[..., list[str]], group_id: str
) -> None:
    (topic,) = fresh_topics("permanent")
    _publish_requests(bus, topic, 1)
    calls = []

    def handler(event: Event) -> list[Outgoing]:
        calls.append(event.event_id)
        raise PermanentError("bad request: field x is missing")

    stats = EventConsumer(bus, group_id=group_id, topics=[topic], handler=handler, name="perm").run(
        max_records=1, idle_timeout_s=60
    )
    assert len(calls) == 1 and stats.dead_lettered == 1 and stats.retries == 0


def test_malformed_record_lands_in_the_dlq_and_the_loop_goes_on(
    bus: BusSettings,
    fresh_topics: Callable[..., list[str]],
    group_id: str,
    collect: Callable[..., list],
) -> None:
    (topic,) = fresh_topics("malformed")
    with EventProducer(bus, name="test") as producer:
        producer.send_raw(topic, b"\x08\x96\x01 definitely not an envelope", key=b"k")
        producer.publish(topic, events_pb2.SolveRequested(request_id="good"), key="k")
        producer.flush()
    seen: list[str] = []
    stats = EventConsumer(
        bus,
        group_id=group_id,
        topics=[topic],
        handler=lambda e: seen.append(e.payload.request_id) or [],  # type: ignore[attr-defined]
        name="malformed",
    ).run(max_records=2, idle_timeout_s=60)
    assert seen == ["good"] and stats.dead_lettered == 1
    (record,) = collect([dlq(topic)], 1)
    _, letter = unwrap(record.value)
    assert letter.value == b"\x08\x96\x01 definitely not an envelope"  # type: ignore[attr-defined]
    assert letter.error_type == "codejury.bus.errors.EnvelopeError"  # type: ignore[attr-defined]
    assert letter.attempts == 0 and record.key == b"k"  # type: ignore[attr-defined]


@pytest.mark.parametrize("concurrency", [1, 4])
def test_duplicate_event_ids_are_handled_once(
    bus: BusSettings, fresh_topics: Callable[..., list[str]], group_id: str, concurrency: int
) -> None:
    (topic,) = fresh_topics("dupes")
    with EventProducer(bus, name="test") as producer:
        env = producer.publish(topic, events_pb2.SolveRequested(request_id="once"), key="k")
        for _ in range(3):
            producer.send_raw(topic, env.SerializeToString(), key=b"k")
        producer.flush()
    seen: list[str] = []
    stats = EventConsumer(
        bus,
        group_id=group_id,
        topics=[topic],
        handler=lambda e: seen.append(e.event_id) or [],
        name="dupes",
        concurrency=concurrency,  # the copies may be handled at once: still only one is
    ).run(max_records=4, idle_timeout_s=60)
    assert seen == [env.event_id] and stats.duplicates == 3


def test_a_concurrent_consumer_handles_a_batch_at_once_and_commits_every_offset(
    bus: BusSettings,
    fresh_topics: Callable[..., list[str]],
    group_id: str,
    collect: Callable[..., list],
) -> None:
    topic, out = fresh_topics("concurrent-in", "concurrent-out")
    _publish_requests(bus, topic, 12, "c", key="k")
    lock = threading.Lock()
    in_flight, most = 0, 0
    handled: Counter[str] = Counter()

    def handler(event: Event) -> list[Outgoing]:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.3)  # a handler that waits on something else (sandbox workers)
        request_id = event.payload.request_id  # type: ignore[attr-defined]
        with lock:
            in_flight -= 1
            handled[request_id] += 1
        return [Outgoing(out, events_pb2.CandidatesGenerated(request_id=request_id))]

    stats = EventConsumer(
        bus, group_id=group_id, topics=[topic], handler=handler, name="conc", concurrency=4
    ).run(max_records=12, idle_timeout_s=60)

    assert most >= 2  # events overlapped (4 when one poll brought them all)
    assert handled == Counter({f"c-{i}": 1 for i in range(12)}) and stats.handled == 12
    outputs = collect([out], 12)
    assert sorted(unwrap(r.value)[1].request_id for r in outputs) == sorted(handled)
    probe = KafkaConsumer(bootstrap_servers=bus.bootstrap_servers, group_id=group_id)
    try:
        partitions = probe.partitions_for_topic(topic) or set()
        committed = {p: probe.committed(TopicPartition(topic, p)) for p in partitions}
    finally:
        probe.close()
    assert sorted(c for c in committed.values() if c) == [12]  # the one partition, all of it


def test_stop_while_one_event_of_a_concurrent_chunk_waits_to_retry_leaves_it_uncommitted(
    bus: BusSettings, fresh_topics: Callable[..., list[str]], group_id: str
) -> None:
    (topic,) = fresh_topics("abandon")
    _publish_requests(bus, topic, 6, "a", key="k")  # one partition: offsets 0..5
    slow_retry = bus.model_copy(update={"retry_backoff_s": 60.0, "retry_backoff_max_s": 60.0})
    waiting = threading.Event()
    done: list[str] = []

    def failing_once(event: Event) -> list[Outgoing]:
        request_id = event.payload.request_id  # type: ignore[attr-defined]
        if request_id == "a-1":
            waiting.set()
            raise ConnectionError("the model server is restarting")  # retried in 60 s
        done.append(request_id)
        return []

    consumer = EventConsumer(
        slow_retry,
        group_id=group_id,
        topics=[topic],
        handler=failing_once,
        name="abandon",
        concurrency=4,
    )
    thread = _run_in_thread(consumer)
    deadline = time.monotonic() + 60
    while not (waiting.is_set() and len(done) >= 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert waiting.is_set() and sorted(done[:3]) == ["a-0", "a-2", "a-3"]  # one chunk of 4
    consumer.request_stop()  # a-1 waits for its retry: it is abandoned, not dead-lettered
    thread.join(timeout=30)
    assert not thread.is_alive() and consumer.stats.dead_lettered == 0

    # The partition is committed up to a-1 (a-2 and a-3 after it cannot be): the next
    # member of the group starts there, and a-1 is handled after all.
    again: list[str] = []
    EventConsumer(
        bus,
        group_id=group_id,
        topics=[topic],
        handler=lambda e: again.append(e.payload.request_id) or [],  # type: ignore[attr-defined]
        name="abandon-2",
    ).run(max_records=5, idle_timeout_s=60)
    assert again == ["a-1", "a-2", "a-3", "a-4", "a-5"]


def test_a_given_empty_store_is_the_one_that_remembers(
    bus: BusSettings, fresh_topics: Callable[..., list[str]], group_id: str, tmp_path: Path
) -> None:
    """An empty SQLite store is falsy (it has a length): it must still be used, or ids
    would not survive a restart."""
    (topic,) = fresh_topics("store")
    with EventProducer(bus, name="test") as producer:
        env = producer.publish_now(topic, events_pb2.SolveRequested(request_id="kept"), key="k")
    store = SqliteProcessedIds(tmp_path / "ids.sqlite", 100)
    EventConsumer(
        bus, group_id=group_id, topics=[topic], handler=lambda e: [], name="store", processed=store
    ).run(max_records=1, idle_timeout_s=60)
    reopened = SqliteProcessedIds(tmp_path / "ids.sqlite", 100)
    assert env.event_id in reopened and len(reopened) == 1


def test_a_dead_lettered_request_is_answered_with_its_error(
    bus: BusSettings, fresh_topics: Callable[..., list[str]], group_id: str, collect
) -> None:  # type: ignore[no-untyped-def]
    """``on_dead_letter`` replies: the record still goes to the DLQ, and the caller hears."""
    topic, answers = fresh_topics("refused", "answers")
    with EventProducer(bus, name="test") as producer:
        env = producer.publish_now(topic, events_pb2.SolveRequested(request_id="r9"), key="r9")

    def refuse(event: Event) -> list[Outgoing]:
        raise PermanentError("n must be >= 1, got 0")

    replies: list[str] = []

    def answer(event: Event, error: BaseException) -> list[Outgoing]:
        replies.append(str(error))
        return [Outgoing(answers, events_pb2.SolveCompleted(request_id="r9"), "r9")]

    stats = EventConsumer(
        bus, group_id=group_id, topics=[topic], handler=refuse, name="refuse", on_dead_letter=answer
    ).run(max_records=1, idle_timeout_s=60)
    assert stats.dead_lettered == 1 and stats.handled == 0
    assert replies == ["n must be >= 1, got 0"]
    (letter,) = collect([dlq(topic)], 1)
    assert unwrap(letter.value)[1].error.endswith("n must be >= 1, got 0")
    (reply,) = collect([answers], 1)
    envelope, payload = unwrap(reply.value)
    assert payload.request_id == "r9" and envelope.causation_id == env.event_id


def test_outputs_carry_trace_and_derived_ids(
    bus: BusSettings,
    fresh_topics: Callable[..., list[str]],
    group_id: str,
    collect: Callable[..., list],
) -> None:
    topic, out = fresh_topics("trace-in", "trace-out")
    with EventProducer(bus, name="test") as producer:
        env = producer.publish(topic, events_pb2.SolveRequested(request_id="t"))
        producer.flush()

    def fan_out(event: Event) -> list[Outgoing]:
        return [Outgoing(out, events_pb2.CandidatesGenerated(request_id=f"t{i}")) for i in range(2)]

    EventConsumer(bus, group_id=group_id, topics=[topic], handler=fan_out, name="t").run(
        max_records=1, idle_timeout_s=60
    )
    envelopes = [unwrap(r.value)[0] for r in collect([out], 2)]
    assert {e.trace_id for e in envelopes} == {env.trace_id}
    assert {e.causation_id for e in envelopes} == {env.event_id}
    assert len({e.event_id for e in envelopes}) == 2


def test_stop_from_another_thread_ends_the_loop(
    bus: BusSettings, fresh_topics: Callable[..., list[str]], group_id: str
) -> None:
    (topic,) = fresh_topics("stop")
    consumer = EventConsumer(bus, group_id=group_id, topics=[topic], handler=lambda e: [], name="s")
    thread = _run_in_thread(consumer)
    time.sleep(1)
    consumer.request_stop()
    thread.join(timeout=15)
    assert not thread.is_alive()


def test_unreachable_broker_is_a_clear_error_within_the_timeout() -> None:
    from codejury.bus.embedded import free_port
    from codejury.bus.errors import BrokerUnavailableError

    bus = BusSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", connect_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match="codejury broker"):
        EventProducer(bus, name="nowhere")
    with pytest.raises(BrokerUnavailableError, match="CODEJURY_BUS__BOOTSTRAP_SERVERS"):
        EventConsumer(bus, group_id=uuid.uuid4().hex, topics=["x"], handler=lambda e: [], name="n")
    assert time.monotonic() - started < 15


# Slow lane (12 s): the default lane keeps the same case end to end through the embedded
# pipeline (test_pipe_end_to_end.py, 3 s on its shared fixture).
@pytest.mark.slow
def test_an_output_too_large_for_a_record_is_dead_lettered_once_and_answered(
    bus: BusSettings, fresh_topics: Callable[..., list[str]], group_id: str, collect
) -> None:  # type: ignore[no-untyped-def]
    """Issue 16's outage: 32 candidates whose tests print 60 KB make a 1.75 MB
    CandidatesExecuted. The send failed, the error escaped the loop and killed the stage;
    every later request was lost. Now: the event is dead-lettered once with the reason, the
    caller is answered, nothing of it is published, and the next request goes through."""
    topic, out, answers = fresh_topics("big-in", "big-out", "big-answers")
    sent = _publish_requests(bus, topic, 3)
    big = "r-1"
    calls: Counter[str] = Counter()

    def handler(event: Event) -> list[Outgoing]:
        request_id = event.payload.request_id  # type: ignore[attr-defined]
        calls[request_id] += 1
        executed = events_pb2.CandidatesExecuted(request_id=request_id)
        if request_id == big:
            for i in range(32):
                executed.results.add(candidate_id=f"c{i}", stdout="x" * 60_000)
        return [Outgoing(out, executed, request_id)]

    replies: list[str] = []

    def answer(event: Event, error: BaseException) -> list[Outgoing]:
        replies.append(str(error))
        return [Outgoing(answers, events_pb2.SolveCompleted(request_id=big), big)]

    consumer = EventConsumer(
        bus, group_id=group_id, topics=[topic], handler=handler, name="big", on_dead_letter=answer
    )
    stats = consumer.run(max_records=3, idle_timeout_s=60)

    assert calls[big] == 1 and stats.retries == 0  # permanent: not retried, not replayed
    assert stats.dead_lettered == 1 and stats.handled == 2
    assert len(replies) == 1 and "over the 1,048,576-byte Kafka record limit" in replies[0]
    published = collect([out], 2)
    assert sorted(unwrap(r.value)[1].request_id for r in published) == sorted(
        s for s in sent if s != big
    )
    (letter,) = collect([dlq(topic)], 1)
    assert "RecordTooLargeError" in unwrap(letter.value)[1].error_type
    (reply,) = collect([answers], 1)
    assert unwrap(reply.value)[1].request_id == big


def test_a_request_stage_drops_what_is_past_its_deadline_and_passes_the_deadline_on(
    bus: BusSettings,
    fresh_topics: Callable[..., list[str]],
    group_id: str,
    collect: Callable[..., list],
) -> None:
    """Issue 16: SolveRequested carries the caller's deadline; a stage drops work whose
    deadline has passed (counted) instead of spending a generator or sandboxes on it, and
    what it publishes carries the same deadline on."""
    topic, out = fresh_topics("deadline-in", "deadline-out")
    now = datetime.now(UTC)
    later = now + timedelta(minutes=5)
    with EventProducer(bus, name="test-publisher") as producer:
        producer.publish(
            topic,
            events_pb2.SolveRequested(request_id="gone"),
            key="a",
            deadline=now - timedelta(seconds=1),
        )
        producer.publish(
            topic, events_pb2.SolveRequested(request_id="waited"), key="a", deadline=later
        )
        producer.publish(topic, events_pb2.SolveRequested(request_id="no-deadline"), key="a")
        producer.flush()
    handled: list[str] = []

    def handle(event: Event) -> list[Outgoing]:
        handled.append(event.payload.request_id)  # type: ignore[attr-defined]
        return [Outgoing(out, event.payload, key="a")]

    stage = EventConsumer(
        bus, group_id=group_id, topics=[topic], handler=handle, name="stage", drop_expired=True
    )
    stats = stage.run(max_records=3, idle_timeout_s=30)
    assert handled == ["waited", "no-deadline"]
    assert stats.expired == 1 and stats.handled == 2
    published = {}
    for record in collect([out], 2):
        envelope, payload = unwrap(record.value)
        published[payload.request_id] = deadline_of(envelope)  # type: ignore[attr-defined]
    assert published["waited"] == later
    assert published["no-deadline"] is None
    # a consumer off the request path (the feedback consumer) handles everything
    again = EventConsumer(
        bus, group_id=f"{group_id}-all", topics=[topic], handler=lambda e: [], name="all"
    )
    assert again.run(max_records=3, idle_timeout_s=30).handled == 3


def test_a_record_too_large_to_dead_letter_whole_is_dead_lettered_with_its_head(
    bus: BusSettings,
    fresh_topics: Callable[..., list[str]],
    group_id: str,
    collect: Callable[..., list],
) -> None:
    """Found by `codejury bench load`: a record just under the 1 MiB limit that does not
    decode made a dead letter (its value, the error, the source) over the limit; the
    refusal escaped the loop and every stage crashed on it again at each restart. The
    letter keeps the value's head and says so; the loop goes on."""
    (topic,) = fresh_topics("oversized")
    big = b"\xff" * (MAX_RECORD_BYTES - 2048)
    with EventProducer(bus, name="test") as producer:
        producer.send_raw(topic, big, key=b"k")
        producer.publish(topic, events_pb2.SolveRequested(request_id="good"), key="k")
        producer.flush()
    seen: list[str] = []
    stats = EventConsumer(
        bus,
        group_id=group_id,
        topics=[topic],
        handler=lambda e: seen.append(e.payload.request_id) or [],  # type: ignore[attr-defined]
        name="oversized",
    ).run(max_records=2, idle_timeout_s=60)
    assert seen == ["good"] and stats.dead_lettered == 1
    (record,) = collect([dlq(topic)], 1)
    _, letter = unwrap(record.value)
    assert letter.error_type == "codejury.bus.errors.EnvelopeError"  # type: ignore[attr-defined]
    kept = len(letter.value)  # type: ignore[attr-defined]
    assert 0 < kept < len(big) and letter.value == big[:kept]  # type: ignore[attr-defined]
    assert f"was {len(big):,} bytes" in letter.error  # type: ignore[attr-defined]
    assert len(record.value) <= MAX_RECORD_BYTES
