"""The Kafka stage: candidates.generated -> candidates.executed, through real tansu."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from codejury.bus.consumer import EventConsumer
from codejury.bus.envelope import unwrap
from codejury.bus.producer import EventProducer
from codejury.bus.topics import dlq
from codejury.core.settings import BusSettings
from codejury.execution.backends import LocalBackend
from codejury.execution.executor import Executor
from codejury.execution.sandbox import Limits
from codejury.execution.stage import make_handler
from codejury.proto.v1 import domain_pb2, events_pb2


def _generated(
    request_id: str, problem: domain_pb2.Problem, completions: list[str]
) -> events_pb2.CandidatesGenerated:
    return events_pb2.CandidatesGenerated(
        request_id=request_id,
        problem=problem,
        candidates=[
            domain_pb2.Candidate(candidate_id=f"{request_id}-{i}", index=i, completion=c)
            for i, c in enumerate(completions)
        ],
    )


# the stage's logic is the executor's caller only: the production (warm) path is enough
# here, and both executors are checked by the executor tests
@pytest.mark.parametrize("executor", ["warm"], indirect=True)
def test_stage_executes_with_tests_passes_through_without_and_dead_letters_bad_input(
    bus: BusSettings,
    fresh_topics: Callable[..., list[str]],
    group_id: str,
    collect: Callable[..., list],
    executor: Executor,
) -> None:
    generated_topic, executed_topic = fresh_topics("generated", "executed")
    with_tests = domain_pb2.Problem(
        problem_id="double",
        language="python",
        prompt="def double(x):\n",
        tests="assert double(3) == 6\n",
    )
    without_tests = domain_pb2.Problem(problem_id="free", language="python", prompt="def f():\n")
    bad = domain_pb2.Problem(problem_id="bad", language="cobol", prompt="x", tests="y")
    with EventProducer(bus, name="test") as producer:
        producer.publish(
            generated_topic, _generated("r1", with_tests, ["    return 2 * x\n", "    return x\n"])
        )
        producer.publish(generated_topic, _generated("r2", without_tests, ["    return 1\n"]))
        producer.publish(generated_topic, _generated("r3", bad, ["z"]))
        producer.flush()

    handler = make_handler(
        LocalBackend(executor), Limits(timeout_s=10), max_batch=16, max_program_bytes=1 << 20
    )

    def to_test_topic(event):  # type: ignore[no-untyped-def]
        return [type(out)(executed_topic, out.payload, out.key) for out in handler(event)]

    stats = EventConsumer(
        bus, group_id=group_id, topics=[generated_topic], handler=to_test_topic, name="exec-stage"
    ).run(max_records=3, idle_timeout_s=60)
    assert stats.handled == 2 and stats.dead_lettered == 1

    executed = {}
    for record in collect([executed_topic], 2):
        _, payload = unwrap(record.value)
        executed[payload.request_id] = payload
    r1, r2 = executed["r1"], executed["r2"]
    assert [r.candidate_id for r in r1.results] == ["r1-0", "r1-1"]
    assert [r.status for r in r1.results] == [domain_pb2.PASSED, domain_pb2.FAILED]
    assert list(r1.candidates) == list(
        _generated("r1", with_tests, ["    return 2 * x\n", "    return x\n"]).candidates
    )
    assert len(r2.candidates) == 1 and len(r2.results) == 0  # nothing to run without tests

    (letter_record,) = collect([dlq(generated_topic)], 1)
    _, letter = unwrap(letter_record.value)
    assert "unknown language 'cobol'" in letter.error
    assert letter.attempts == 1  # invalid input is permanent: not retried
