"""The Kafka handler's decisions, without a broker: outputs, labels, refusals."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from codejury.bus.envelope import Event, wrap
from codejury.bus.topics import FEEDBACK, SOLVE_COMPLETED
from codejury.core.errors import TemporaryError
from codejury.proto.v1 import domain_pb2, events_pb2
from codejury.reranking.errors import CorruptVersionError, InvalidRequestError
from codejury.reranking.ranking import Ranking, ranking_of
from codejury.reranking.requests import RankLimits
from codejury.reranking.stage import label_for, make_handler

LIMITS = RankLimits(max_candidates=8, max_candidate_bytes=1000, max_prompt_bytes=1000)


class LengthRanker:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.draws: list[float] = []

    def rank(
        self,
        problem: domain_pb2.Problem,
        candidates: Sequence[domain_pb2.Candidate],
        *,
        draw: float,
    ) -> Ranking:
        self.draws.append(draw)
        if self.error is not None:
            raise self.error
        return ranking_of([float(len(c.completion)) for c in candidates], "v7", "stable")


def _event(payload: events_pb2.CandidatesExecuted | events_pb2.SolveCompleted) -> Event:
    return Event("t", 0, 0, None, wrap(payload, producer="test"), payload)


def _executed(statuses: Sequence[int | None]) -> events_pb2.CandidatesExecuted:
    executed = events_pb2.CandidatesExecuted(
        request_id="r1", problem=domain_pb2.Problem(problem_id="p1", language="python", prompt="x")
    )
    for i, status in enumerate(statuses):
        executed.candidates.add(candidate_id=f"c{i}", index=i, completion="y" * (i + 1))
        if status is not None:
            executed.results.add(candidate_id=f"c{i}", status=status)
    return executed


def test_labels_come_from_the_programs_own_outcome_only() -> None:
    assert label_for(None) == events_pb2.FEEDBACK_LABEL_UNLABELLED
    assert label_for(domain_pb2.ExecutionResult(status=domain_pb2.PASSED)) == (
        events_pb2.FEEDBACK_LABEL_PASSED
    )
    for status in (domain_pb2.FAILED, domain_pb2.TIMEOUT, domain_pb2.COMPILE_ERROR):
        assert label_for(domain_pb2.ExecutionResult(status=status)) == (
            events_pb2.FEEDBACK_LABEL_FAILED
        )
    assert label_for(domain_pb2.ExecutionResult(status=domain_pb2.SANDBOX_ERROR)) == (
        events_pb2.FEEDBACK_LABEL_UNLABELLED
    )


def test_completed_plus_one_feedback_per_candidate() -> None:
    ranker = LengthRanker()
    handle = make_handler(ranker, LIMITS, model_name="reranker")
    executed = _executed([domain_pb2.FAILED, domain_pb2.PASSED, domain_pb2.SANDBOX_ERROR, None])
    out = list(handle(_event(executed)))
    assert [o.topic for o in out] == [SOLVE_COMPLETED] + [FEEDBACK] * 4
    assert all(o.key == "r1" for o in out)
    completed = out[0].payload
    assert isinstance(completed, events_pb2.SolveCompleted)
    assert (completed.chosen_index, completed.reranker_version, completed.error) == (3, "v7", "")
    assert [s.score for s in completed.scores] == [1.0, 2.0, 3.0, 4.0]
    assert len(completed.results) == 3 and len(completed.candidates) == 4
    feedback = [o.payload for o in out[1:]]
    assert [f.candidate.candidate_id for f in feedback] == ["c0", "c1", "c2", "c3"]  # type: ignore[attr-defined]
    assert [f.label for f in feedback] == [  # type: ignore[attr-defined]
        events_pb2.FEEDBACK_LABEL_FAILED,
        events_pb2.FEEDBACK_LABEL_PASSED,
        events_pb2.FEEDBACK_LABEL_UNLABELLED,
        events_pb2.FEEDBACK_LABEL_UNLABELLED,
    ]
    assert [f.chosen for f in feedback] == [False, False, False, True]  # type: ignore[attr-defined]
    assert {f.reranker_version for f in feedback} == {"v7"}  # type: ignore[attr-defined]
    assert feedback[0].score.model_version == "v7"  # type: ignore[attr-defined]
    assert not feedback[3].HasField("result")
    # The route is derived from the request id: a redelivery takes the same one.
    list(handle(_event(executed)))
    assert ranker.draws[0] == ranker.draws[1]


@pytest.mark.parametrize(
    ("statuses", "error", "message"),
    [
        ([], None, "candidates is empty"),
        ([domain_pb2.PASSED], CorruptVersionError("version 'v7' is corrupt"), "is corrupt"),
    ],
)
def test_permanent_refusals_are_answered_with_an_error_and_no_feedback(
    statuses: list[int], error: Exception | None, message: str
) -> None:
    out = list(
        make_handler(LengthRanker(error), LIMITS, model_name="r")(_event(_executed(statuses)))
    )
    assert [o.topic for o in out] == [SOLVE_COMPLETED]
    assert message in out[0].payload.error  # type: ignore[attr-defined]


def test_temporary_errors_and_wrong_event_types_raise() -> None:
    handle = make_handler(LengthRanker(TemporaryError("endpoint down")), LIMITS, model_name="r")
    with pytest.raises(TemporaryError):
        list(handle(_event(_executed([None]))))
    with pytest.raises(InvalidRequestError, match=r"expected CandidatesExecuted"):
        list(handle(_event(events_pb2.SolveCompleted())))


@pytest.mark.parametrize(
    ("asked", "served", "chosen"),
    [
        (domain_pb2.SELECTION_UNSPECIFIED, domain_pb2.SELECTION_EXECUTION_FIRST, 1),
        (domain_pb2.SELECTION_EXECUTION_FIRST, domain_pb2.SELECTION_EXECUTION_FIRST, 1),
        (domain_pb2.SELECTION_RERANKER_ONLY, domain_pb2.SELECTION_RERANKER_ONLY, 3),
    ],
)
def test_the_caller_s_tests_pick_the_answer_but_feedback_keeps_the_model_s_own_pick(
    asked: int, served: int, chosen: int
) -> None:
    executed = _executed([domain_pb2.FAILED, domain_pb2.PASSED, domain_pb2.SANDBOX_ERROR, None])
    executed.problem.tests = "assert f() == 1"
    executed.selection = asked  # type: ignore[assignment]
    out = list(make_handler(LengthRanker(), LIMITS, model_name="r")(_event(executed)))
    completed = out[0].payload
    assert isinstance(completed, events_pb2.SolveCompleted)
    assert (completed.selection, completed.chosen_index) == (served, chosen)
    # the reward model's top score (the longest completion, #3) is what a canary judges
    assert [f.chosen for f in (o.payload for o in out[1:])] == [False, False, False, True]  # type: ignore[attr-defined]
