"""The Solve's selection policy (pure): which candidate answers, and when the tests decide."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from codejury.proto.v1 import domain_pb2
from codejury.reranking.ranking import ranking_of, resolve_selection, select_index

PASSED, FAILED, TIMEOUT = domain_pb2.PASSED, domain_pb2.FAILED, domain_pb2.TIMEOUT
SANDBOX_ERROR = domain_pb2.SANDBOX_ERROR
FIRST, ONLY = domain_pb2.SELECTION_EXECUTION_FIRST, domain_pb2.SELECTION_RERANKER_ONLY


def _results(statuses: Sequence[int | None]) -> list[domain_pb2.ExecutionResult | None]:
    return [None if s is None else domain_pb2.ExecutionResult(status=s) for s in statuses]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tests", "asked", "resolved"),
    [
        ("assert f(1) == 2", domain_pb2.SELECTION_UNSPECIFIED, FIRST),
        ("  \n", domain_pb2.SELECTION_UNSPECIFIED, ONLY),  # blank tests are no tests
        ("", domain_pb2.SELECTION_UNSPECIFIED, ONLY),
        ("assert f(1) == 2", ONLY, ONLY),  # the caller's explicit choice stands
        ("", FIRST, FIRST),
    ],
)
def test_unspecified_means_execution_first_exactly_when_there_are_tests(
    tests: str, asked: int, resolved: int
) -> None:
    problem = domain_pb2.Problem(language="python", prompt="x", tests=tests)
    assert resolve_selection(asked, problem) == resolved  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("scores", "statuses", "chosen"),
    [
        # the top score failed; of the two that passed the better-scored one wins
        ([0.9, 0.2, 0.5, 0.1], [FAILED, PASSED, PASSED, FAILED], 2),
        # none passed: a candidate the sandbox could not judge beats a known failure...
        ([0.9, 0.2, 0.5], [FAILED, SANDBOX_ERROR, TIMEOUT], 1),
        # ...and so does one with no result at all
        ([0.9, 0.2, 0.5], [FAILED, None, SANDBOX_ERROR], 2),
        # all failed: the reward model's pick
        ([0.1, 0.7, 0.5], [FAILED, TIMEOUT, FAILED], 1),
        # ties inside the tier go to the earliest, as in the reward model's own rule
        ([0.9, 0.4, 0.4], [FAILED, PASSED, PASSED], 1),
        # NaN scores never win; a tier of NaNs gives its first candidate
        ([0.9, math.nan, 0.3], [FAILED, PASSED, PASSED], 2),
        ([0.9, math.nan, math.nan], [FAILED, PASSED, PASSED], 1),
    ],
)
def test_execution_first_ranks_within_the_best_tier(
    scores: list[float], statuses: list[int | None], chosen: int
) -> None:
    ranking = ranking_of(scores, "v1")
    assert select_index(ranking, _results(statuses), FIRST) == chosen


def test_reranker_only_ignores_the_tests_and_no_results_means_the_reranker_s_pick() -> None:
    ranking = ranking_of([0.9, 0.2], "v1")
    assert select_index(ranking, _results([FAILED, PASSED]), ONLY) == 0
    assert select_index(ranking, [], FIRST) == 0  # a problem without tests has no results


def test_results_that_do_not_match_the_candidates_are_refused() -> None:
    with pytest.raises(ValueError, match="1 results for 2 scores"):
        select_index(ranking_of([0.9, 0.2], "v1"), _results([PASSED]), FIRST)
