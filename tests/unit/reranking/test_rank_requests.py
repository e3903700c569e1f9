"""Rank request validation: each rejection names the field, the value and the fix."""

from __future__ import annotations

import pytest
from codejury.proto.v1 import domain_pb2
from codejury.reranking.errors import InvalidRequestError
from codejury.reranking.requests import RankLimits, check_candidates, check_ranker

LIMITS = RankLimits(max_candidates=4, max_candidate_bytes=100, max_prompt_bytes=1000)
PROBLEM = domain_pb2.Problem(problem_id="p", prompt="def f():\n")
BASELINES = ("first", "logprob", "random")


def _candidates(*completions: str) -> list[domain_pb2.Candidate]:
    return [
        domain_pb2.Candidate(candidate_id=str(i), completion=c) for i, c in enumerate(completions)
    ]


@pytest.mark.parametrize(
    ("problem", "candidates", "message"),
    [
        (PROBLEM, [], "candidates is empty: send at least one"),
        (PROBLEM, _candidates(*"abcde"), "5 entries, over the limit of 4.*max_candidates"),
        (PROBLEM, _candidates("ok", "x" * 101), r"candidates\[1\].completion is 101 bytes.*100"),
        (
            domain_pb2.Problem(prompt="p" * 1001),
            _candidates("ok"),
            "problem.prompt is 1001 bytes.*max_prompt_kb",
        ),
    ],
)
def test_bad_candidates(
    problem: domain_pb2.Problem, candidates: list[domain_pb2.Candidate], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        check_candidates(problem, candidates, LIMITS)


def test_good_candidates_pass() -> None:
    check_candidates(PROBLEM, _candidates("", "x" * 100), LIMITS)


def test_rankers_and_pinned_versions() -> None:
    check_ranker("", "", baselines=BASELINES)
    check_ranker("random", "", baselines=BASELINES)
    check_ranker("", "rr-3", baselines=BASELINES)
    with pytest.raises(
        InvalidRequestError, match=r"ranker 'best' is not known.*'first', 'logprob'"
    ):
        check_ranker("best", "", baselines=BASELINES)
    with pytest.raises(InvalidRequestError, match=r"pins a reward-model version.*'first'"):
        check_ranker("first", "rr-3", baselines=BASELINES)
    with pytest.raises(InvalidRequestError, match=r"'../x' is not a valid version id"):
        check_ranker("", "../x", baselines=BASELINES)
