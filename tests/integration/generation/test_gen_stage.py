"""The Kafka stage: solve.requested -> candidates.generated, through real tansu."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from codejury.bus.consumer import EventConsumer
from codejury.bus.envelope import unwrap
from codejury.bus.producer import EventProducer
from codejury.bus.topics import dlq
from codejury.core.settings import BusSettings, GenerationSettings
from codejury.generation.factory import make_generator
from codejury.generation.stage import make_handler, request_seed
from codejury.proto.v1 import domain_pb2, events_pb2


def test_stage_generates_candidates_and_dead_letters_bad_requests(
    bus: BusSettings,
    fresh_topics: Callable[..., list[str]],
    group_id: str,
    collect: Callable[..., list],
    tiny_model_dir: Path,
) -> None:
    requested_topic, generated_topic = fresh_topics("requested", "generated")
    problem = domain_pb2.Problem(
        problem_id="add", language="python", prompt="def add(a, b):\n", stop_sequences=["\n"]
    )
    sampling = domain_pb2.SamplingParams(max_new_tokens=12)  # no seed: derived from the id
    with EventProducer(bus, name="test") as producer:
        producer.publish(
            requested_topic,
            events_pb2.SolveRequested(request_id="r1", problem=problem, n=3, sampling=sampling),
        )
        producer.publish(
            requested_topic,
            events_pb2.SolveRequested(request_id="r2", problem=problem, n=0, sampling=sampling),
        )
        producer.flush()

    generator = make_generator(
        GenerationSettings(model=str(tiny_model_dir), prompt_style="completion")  # type: ignore[call-arg]
    )
    handler = make_handler(generator)

    def to_test_topic(event):  # type: ignore[no-untyped-def]
        return [type(out)(generated_topic, out.payload, out.key) for out in handler(event)]

    stats = EventConsumer(
        bus, group_id=group_id, topics=[requested_topic], handler=to_test_topic, name="gen-stage"
    ).run(max_records=2, idle_timeout_s=60)
    assert stats.handled == 1 and stats.dead_lettered == 1

    (record,) = collect([generated_topic], 1)
    assert record.key == b"r1"
    _, generated = unwrap(record.value)
    assert isinstance(generated, events_pb2.CandidatesGenerated)
    assert generated.request_id == "r1" and generated.problem == problem
    assert [c.candidate_id for c in generated.candidates] == ["r1-0-0", "r1-0-1", "r1-0-2"]
    assert all("\n" not in c.completion for c in generated.candidates)
    # A redelivered request samples the same candidates: the seed comes from its id.
    assert {c.sampling.seed for c in generated.candidates} == {request_seed("r1")}

    (letter_record,) = collect([dlq(requested_topic)], 1)
    _, letter = unwrap(letter_record.value)
    assert "n must be >= 1, got 0" in letter.error
    assert letter.attempts == 1  # invalid input is permanent: not retried
