"""Solve replies into evaluation outcomes, and what an interrupted evaluation does."""

from __future__ import annotations

import threading
import time

import pytest
from codejury.evaluation.datasets import BenchmarkProblem
from codejury.pipeline.evaluate import (
    LOGPROB,
    RANDOM,
    REWARD_MODEL,
    EvalPlan,
    evaluate,
    outcome_of,
    passed_of,
    problem_seed,
)
from codejury.proto.v1 import domain_pb2, services_pb2

PROBLEM = domain_pb2.Problem(problem_id="p", language="python", prompt="def f():\n")


def reply(statuses: list[int], scores: list[float]) -> services_pb2.SolveResponse:
    candidates = [
        domain_pb2.Candidate(candidate_id=f"c{i}", logprob_mean=-0.1 * i)
        for i in range(len(statuses))
    ]
    return services_pb2.SolveResponse(
        candidates=candidates,
        results=[
            domain_pb2.ExecutionResult(candidate_id=f"c{i}", status=s)
            for i, s in enumerate(statuses)
        ],
        scores=[domain_pb2.Score(candidate_id=f"c{i}", score=v) for i, v in enumerate(scores)],
    )


def test_only_the_program_s_own_outcome_labels_it() -> None:
    assert passed_of(domain_pb2.ExecutionResult(status=domain_pb2.PASSED)) is True
    for status in (domain_pb2.FAILED, domain_pb2.TIMEOUT, domain_pb2.COMPILE_ERROR):
        assert passed_of(domain_pb2.ExecutionResult(status=status)) is False
    assert passed_of(domain_pb2.ExecutionResult(status=domain_pb2.SANDBOX_ERROR)) is None
    assert passed_of(None) is None


def test_outcome_carries_every_ranker_s_score_in_candidate_order() -> None:
    sampled = reply(
        [domain_pb2.FAILED, domain_pb2.PASSED, domain_pb2.SANDBOX_ERROR], [0.5, 0.2, 0.9]
    )
    greedy = reply([domain_pb2.PASSED], [0.0])
    outcome = outcome_of(PROBLEM, sampled, greedy)
    assert [c.passed for c in outcome.candidates] == [False, True, None]
    assert [c.scores[REWARD_MODEL] for c in outcome.candidates] == [0.5, 0.2, 0.9]
    assert [c.scores[LOGPROB] for c in outcome.candidates] == [0.0, -0.1, -0.2]
    assert {c.scores[RANDOM] for c in outcome.candidates} == {0.0}
    assert outcome.greedy_passed is True
    assert outcome_of(PROBLEM, sampled, None).greedy_passed is None
    assert outcome_of(PROBLEM, sampled, reply([domain_pb2.FAILED], [0.0])).greedy_passed is False


def test_problem_seeds_are_stable_and_distinct() -> None:
    assert problem_seed(1, "python/p") == problem_seed(1, "python/p") > 0
    assert problem_seed(1, "python/p") != problem_seed(1, "javascript/p")
    assert problem_seed(1, "python/p") != problem_seed(2, "python/p")


class _StoppedClient:
    """The first problem's Solve fails at once (an interrupt); the second blocks until
    released, as a request in flight does until the pipeline stops."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def solve(self, problem: domain_pb2.Problem, *_: object, **__: object) -> object:
        if problem.problem_id == "first":
            raise KeyboardInterrupt
        self.release.wait(10)
        return reply([domain_pb2.FAILED], [0.0])


def test_an_interrupt_returns_without_waiting_for_requests_in_flight() -> None:
    client = _StoppedClient()
    problems = [
        BenchmarkProblem(domain_pb2.Problem(problem_id=pid, language="python"), None)
        for pid in ("first", "second", "third")
    ]
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            evaluate(client, problems, EvalPlan(concurrency=2, greedy=False))  # type: ignore[arg-type]
        assert time.monotonic() - started < 5  # not the 10 s the second request holds
    finally:
        client.release.set()
