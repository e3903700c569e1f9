"""The bootstrap intervals of ``bench method``: hand-checkable cases."""

from __future__ import annotations

import math

import pytest
from codejury.evaluation.bootstrap import (
    bootstrap_interval,
    by_language,
    greedy_vector,
    mean_of_means,
    oracle_vector,
    paired_difference,
    pick_index,
    random_vector,
    top_pick_vector,
)
from codejury.evaluation.errors import InvalidOutcomesError
from codejury.evaluation.metrics import CandidateOutcome, ProblemOutcome


def _problem(
    pid: str,
    passed: list[bool | None],
    scores: list[float],
    *,
    lang: str = "python",
    greedy: bool | None = None,
) -> ProblemOutcome:
    return ProblemOutcome(
        pid,
        lang,
        tuple(CandidateOutcome(p, {"rm": s}) for p, s in zip(passed, scores, strict=True)),
        greedy,
    )


def test_vectors_per_row() -> None:
    outcomes = [
        _problem("a", [False, True, True, False], [0.1, 0.9, 0.2, 0.0], greedy=True),
        _problem("b", [False, None, False, False], [0.5, 0.9, 0.1, 0.0], greedy=False),
        _problem("c", [True, False, False, False], [0.3, 0.3, 0.3, 0.3], greedy=False),
    ]
    assert random_vector(outcomes) == [0.5, 0.0, 0.25]  # None counts as failing
    assert oracle_vector(outcomes) == [1.0, 0.0, 1.0]
    assert greedy_vector(outcomes) == [1.0, 0.0, 0.0]
    # c: a four-way tie goes to the earliest candidate, which passes
    assert top_pick_vector(outcomes, "rm") == [1.0, 0.0, 1.0]


def test_pick_index_takes_the_earliest_of_a_tie() -> None:
    assert pick_index([0.2, 0.7, 0.7, 0.1]) == 1
    assert pick_index([float("-inf"), float("-inf")]) == 0
    with pytest.raises(InvalidOutcomesError, match="NaN"):
        pick_index([0.1, float("nan")])


def test_greedy_must_be_measured_everywhere() -> None:
    with pytest.raises(InvalidOutcomesError, match="greedy_passed is not measured"):
        greedy_vector([_problem("a", [True], [0.0], greedy=None)])


def test_a_missing_ranker_score_is_named() -> None:
    with pytest.raises(InvalidOutcomesError, match="no 'other' score"):
        top_pick_vector([_problem("a", [True], [0.0])], "other")


def test_constant_vector_has_a_zero_width_interval() -> None:
    interval = bootstrap_interval({"python": [0.25] * 7}, n_resamples=200, seed=3)
    assert interval.estimate == interval.low == interval.high == 0.25
    assert interval.problems == 7


def test_mean_of_means_weighs_languages_equally() -> None:
    strata = {"python": [1.0, 1.0, 1.0, 1.0], "cpp": [0.0, 0.0]}
    assert mean_of_means(strata) == 0.5  # not 4/6
    interval = bootstrap_interval(strata, n_resamples=100)
    assert interval.low == interval.high == 0.5  # each language is constant within itself


def test_interval_covers_the_estimate_and_narrows_with_more_problems() -> None:
    small = bootstrap_interval({"x": [1.0, 0.0] * 10}, n_resamples=2000, seed=1)
    large = bootstrap_interval({"x": [1.0, 0.0] * 200}, n_resamples=2000, seed=1)
    assert small.low < small.estimate == 0.5 < small.high
    assert large.high - large.low < small.high - small.low
    # the normal approximation: half-width about 1.96 * sqrt(0.25 / 400) = 0.049
    assert large.high - large.low == pytest.approx(2 * 1.96 * math.sqrt(0.25 / 400), rel=0.15)


def test_seed_reproduces_and_another_seed_differs() -> None:
    values = {"x": [1.0, 0.0, 0.0, 1.0, 0.0, 0.5, 0.25, 1.0]}
    first = bootstrap_interval(values, n_resamples=500, seed=11)
    assert bootstrap_interval(values, n_resamples=500, seed=11) == first
    assert bootstrap_interval(values, n_resamples=500, seed=12) != first


def test_difference_of_identical_rows_is_exactly_zero() -> None:
    row = {"python": [1.0, 0.0, 0.5, 0.0], "java": [0.0, 1.0]}
    interval = paired_difference(row, row, n_resamples=300, seed=5)
    assert (interval.estimate, interval.low, interval.high) == (0.0, 0.0, 0.0)
    assert not interval.excludes_zero


def test_a_known_constant_difference() -> None:
    a = {"python": [1.0, 1.0, 0.0, 1.0]}
    b = {"python": [0.0, 0.0, 0.0, 0.0]}
    b_shifted = {"python": [0.0, 0.0, -1.0, 0.0]}  # a - b is 1.0 on every problem
    assert paired_difference(a, b, n_resamples=100).estimate == 0.75
    exact = paired_difference(a, b_shifted, n_resamples=100)
    assert exact.estimate == exact.low == exact.high == 1.0
    assert exact.excludes_zero


def test_paired_interval_is_narrower_than_unpaired_when_rows_share_difficulty() -> None:
    # b passes the easy half; a passes those and one more: a consistent +1/20 gain
    b = {"x": [1.0] * 10 + [0.0] * 10}
    a = {"x": [1.0] * 11 + [0.0] * 9}
    difference = paired_difference(a, b, n_resamples=2000, seed=2)
    row_a = bootstrap_interval(a, n_resamples=2000, seed=2)
    assert difference.estimate == pytest.approx(0.05)
    assert difference.low >= 0.0  # never negative: no problem where a is worse
    assert difference.high - difference.low < row_a.high - row_a.low


def test_refusals_name_the_fix() -> None:
    with pytest.raises(InvalidOutcomesError, match="no problems for cpp"):
        bootstrap_interval({"cpp": []})
    with pytest.raises(InvalidOutcomesError, match="at least once"):
        bootstrap_interval({"x": [1.0]}, n_resamples=0)
    with pytest.raises(InvalidOutcomesError, match="coverage"):
        bootstrap_interval({"x": [1.0]}, level=95)
    with pytest.raises(InvalidOutcomesError, match="same problems"):
        paired_difference({"x": [1.0, 0.0]}, {"x": [1.0]})
    with pytest.raises(InvalidOutcomesError, match="different languages"):
        paired_difference({"x": [1.0]}, {"y": [1.0]})


def test_by_language_groups_in_order() -> None:
    outcomes = [
        _problem("a", [True], [0.0], lang="python"),
        _problem("b", [True], [0.0], lang="cpp"),
        _problem("c", [True], [0.0], lang="python"),
    ]
    assert by_language(outcomes, [1.0, 2.0, 3.0]) == {"python": [1.0, 3.0], "cpp": [2.0]}
