"""pass@k against values computed by hand and against the exact binomial form."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import pytest
from codejury.core.errors import InvalidArgumentError
from codejury.evaluation.errors import EvaluationError, InvalidCountsError
from codejury.evaluation.passk import SampleCounts, mean_pass_at_k, pass_at_k


def exact(n: int, c: int, k: int) -> float:
    return float(1 - Fraction(comb(n - c, k), comb(n, k)))


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 1, 0.4),  # 2/5
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (5, 2, 3, 0.9),  # 1 - C(3,3)/C(5,3) = 1 - 1/10
        (5, 2, 4, 1.0),  # n - c < k: every draw holds a pass
        (10, 0, 1, 0.0),
        (10, 0, 10, 0.0),
        (10, 10, 1, 1.0),
        (10, 10, 10, 1.0),
        (1, 1, 1, 1.0),
        (1, 0, 1, 0.0),
    ],
)
def test_hand_computed_values(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize(("n", "c", "k"), [(200, 37, 1), (200, 37, 10), (200, 37, 100)])
def test_matches_the_exact_binomial_form(n: int, c: int, k: int) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(exact(n, c, k), rel=1e-12)


def test_large_n_stays_finite_and_exact_where_the_binomials_overflow_floats() -> None:
    n, c, k = 2000, 3, 1000
    with pytest.raises(OverflowError):  # the textbook form cannot even be evaluated
        float(comb(n, k))
    value = pass_at_k(n, c, k)
    assert 0.0 < value < 1.0
    assert value == pytest.approx(exact(n, c, k), rel=1e-12)
    assert pass_at_k(100_000, 1, 1) == pytest.approx(1e-5, rel=1e-12)


def test_mean_over_problems_weighs_each_problem_equally() -> None:
    counts = [SampleCounts(5, 2), (10, 0), (10, 10)]
    assert mean_pass_at_k(counts, 1) == pytest.approx((0.4 + 0.0 + 1.0) / 3)
    assert mean_pass_at_k([(5, 2)], 2) == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("n", "c", "k", "match"),
    [
        (3, 1, 5, r"k=5 with n=3: pass@k needs 1 <= k <= n; sample at least k"),
        (3, 4, 1, r"c=4 with n=3: the passing count must lie in 0\.\.n"),
        (3, -1, 1, r"c=-1 with n=3"),
        (-2, 0, 1, r"n=-2: pass@k needs at least one sample per problem"),
        (0, 0, 1, r"n=0: pass@k needs at least one sample"),
        (3, 1, 0, r"k=0 with n=3"),
        (3, 1, -1, r"k=-1 with n=3"),
    ],
)
def test_impossible_counts_name_the_value_and_the_fix(n: int, c: int, k: int, match: str) -> None:
    with pytest.raises(InvalidCountsError, match=match) as raised:
        pass_at_k(n, c, k)
    assert isinstance(raised.value, EvaluationError)
    assert isinstance(raised.value, InvalidArgumentError)


def test_mean_of_no_problems_is_an_error_not_zero() -> None:
    with pytest.raises(InvalidCountsError, match=r"mean pass@1 of no problems is undefined"):
        mean_pass_at_k([], 1)
    with pytest.raises(InvalidCountsError, match=r"k=2 with n=1"):
        mean_pass_at_k([(5, 1), (1, 1)], 2)
