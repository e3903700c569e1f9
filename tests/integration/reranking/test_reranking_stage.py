"""The Kafka stage through real tansu: candidates.executed -> solve.completed + feedback,
scored by a real KServe model server."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import pytest
from codejury.bus.consumer import EventConsumer
from codejury.bus.envelope import Event, Outgoing, unwrap
from codejury.bus.producer import EventProducer
from codejury.bus.topics import FEEDBACK, SOLVE_COMPLETED
from codejury.core.settings import BusSettings, Settings
from codejury.proto.v1 import domain_pb2, events_pb2
from codejury.reranking.clients import GrpcV2Scorer
from codejury.reranking.launcher import ServedModel
from codejury.reranking.requests import RankLimits
from codejury.reranking.routing import STABLE, RewardModelRanker, Route, VersionRouter
from codejury.reranking.stage import make_handler

STABLE_V = "tiny-stable"  # the registry the conftest builds


def _executed(request_id: str, outcomes: list[int]) -> events_pb2.CandidatesExecuted:
    executed = events_pb2.CandidatesExecuted(
        request_id=request_id,
        problem=domain_pb2.Problem(
            problem_id="inc", language="python", prompt="def inc(x):\n", tests="assert inc(1) == 2"
        ),
    )
    for i, status in enumerate(outcomes):
        executed.candidates.add(
            candidate_id=f"{request_id}-{i}", index=i, completion=f"    return x + {i}\n"
        )
        executed.results.add(candidate_id=f"{request_id}-{i}", status=status)
    return executed


@pytest.fixture
def handler(
    reranking_settings: Settings, model_servers: dict[str, ServedModel]
) -> Iterator[Callable[[Event], Iterable[Outgoing]]]:
    """The stage's handler, scoring through the stable version's KServe server."""
    scorer = GrpcV2Scorer(model_servers[STABLE_V].grpc_address, model_name="reranker", timeout_s=30)
    ranker = RewardModelRanker(VersionRouter(Route(STABLE, scorer, STABLE_V)))
    try:
        yield make_handler(
            ranker, RankLimits.from_settings(reranking_settings.reranking), model_name="reranker"
        )
    finally:
        scorer.close()


def test_stage_publishes_completion_and_one_feedback_per_candidate(
    bus: BusSettings,
    fresh_topics: Callable[..., list[str]],
    group_id: str,
    collect: Callable[..., list],
    handler: Callable[[Event], Iterable[Outgoing]],
) -> None:
    executed_topic, completed_topic, feedback_topic = fresh_topics(
        "executed", "completed", "feedback"
    )
    outcomes = [domain_pb2.FAILED, domain_pb2.PASSED, domain_pb2.SANDBOX_ERROR]
    with EventProducer(bus, name="test") as producer:
        producer.publish(executed_topic, _executed("r1", outcomes))
        producer.publish(executed_topic, _executed("r2", []))  # nothing to rank: an answer
        producer.flush()

    rename = {SOLVE_COMPLETED: completed_topic, FEEDBACK: feedback_topic}

    def to_test_topics(event: Event) -> list[Outgoing]:
        return [Outgoing(rename[o.topic], o.payload, o.key) for o in handler(event)]

    stats = EventConsumer(
        bus, group_id=group_id, topics=[executed_topic], handler=to_test_topics, name="rr"
    ).run(max_records=2, idle_timeout_s=60)
    assert (stats.handled, stats.dead_lettered, stats.published) == (2, 0, 5)

    completed = {}
    for record in collect([completed_topic], 2):
        _, payload = unwrap(record.value)
        completed[payload.request_id] = payload
    r1, r2 = completed["r1"], completed["r2"]
    assert (r1.error, r1.reranker_version, len(r1.scores), len(r1.results)) == ("", STABLE_V, 3, 3)
    scores = [s.score for s in r1.scores]
    # the problem has tests: the answer is the one that passed them (execution first)...
    assert r1.selection == domain_pb2.SELECTION_EXECUTION_FIRST and r1.chosen_index == 1
    assert "candidates is empty" in r2.error and not r2.scores

    feedback = [unwrap(r.value)[1] for r in collect([feedback_topic], 3)]
    assert sorted(f.candidate.candidate_id for f in feedback) == ["r1-0", "r1-1", "r1-2"]
    assert {f.reranker_version for f in feedback} == {STABLE_V}
    # The prompt travels with the feedback: user problems become training pairs.
    assert {f.prompt for f in feedback} == {"def inc(x):\n"}
    assert Counter(f.chosen for f in feedback) == Counter({False: 2, True: 1})
    # ...while the feedback's pick is the reward model's own, its top score
    (top,) = [f.candidate.candidate_id for f in feedback if f.chosen]
    assert top == r1.scores[scores.index(max(scores))].candidate_id
    labels = {f.candidate.candidate_id: f.label for f in feedback}
    assert labels == {
        "r1-0": events_pb2.FEEDBACK_LABEL_FAILED,
        "r1-1": events_pb2.FEEDBACK_LABEL_PASSED,
        "r1-2": events_pb2.FEEDBACK_LABEL_UNLABELLED,  # our sandbox's fault, not a label
    }
    by_id = {f.candidate.candidate_id: f for f in feedback}
    for score in r1.scores:
        assert by_id[score.candidate_id].score == score
