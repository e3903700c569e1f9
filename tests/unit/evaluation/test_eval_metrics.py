"""summarize() on small hand-built outcomes, every expected number worked out by hand."""

from __future__ import annotations

import math

import pytest
from codejury.core.errors import InvalidArgumentError
from codejury.evaluation.errors import InvalidOutcomesError
from codejury.evaluation.metrics import (
    AVERAGE,
    CandidateOutcome,
    EvalSummary,
    ProblemOutcome,
    summarize,
)


def cand(passed: bool | None, rm: float, lp: float) -> CandidateOutcome:
    return CandidateOutcome(passed, {"rm": rm, "lp": lp})


def table() -> list[ProblemOutcome]:
    """python: three problems (one unlabelled candidate, ties at the top, an all-fail
    problem); cpp: one problem where every candidate passes (oracle == random)."""
    return [
        # n=4, c=1: random 1/4, oracle 1; rm picks the pass (1); lp ties F and None (0/2).
        ProblemOutcome(
            "p1",
            "python",
            (
                cand(True, 0.9, 0.1),
                cand(False, 0.5, 0.8),
                cand(False, 0.1, 0.3),
                cand(None, 0.2, 0.8),
            ),
            greedy_passed=True,
        ),
        # n=4, c=2: random 1/2, oracle 1; rm ties F and T (1/2); lp picks a fail (0).
        ProblemOutcome(
            "p2",
            "python",
            (
                cand(False, 0.7, 0.5),
                cand(True, 0.7, 0.2),
                cand(True, 0.3, 0.2),
                cand(False, 0.1, 0.9),
            ),
            greedy_passed=False,
        ),
        # n=2, c=0: everything 0.
        ProblemOutcome(
            "p3", "python", (cand(False, 0.0, 0.0), cand(False, 1.0, 1.0)), greedy_passed=False
        ),
        ProblemOutcome(
            "p1", "cpp", (cand(True, 1.0, 1.0), cand(True, 0.0, 0.0)), greedy_passed=True
        ),
    ]


def test_language_rows_by_hand() -> None:
    summary = summarize(table())
    assert summary.rankers == ("rm", "lp")  # the order the scores name them
    cpp, python = summary.languages  # sorted by language
    assert (python.language, python.problems, python.n_min, python.n_max) == ("python", 3, 2, 4)
    assert python.unlabelled == 1
    assert python.greedy == pytest.approx(1 / 3)
    assert python.random == pytest.approx((1 / 4 + 1 / 2 + 0) / 3)  # 0.25
    assert python.oracle == pytest.approx(2 / 3)
    assert python.reranked["rm"] == pytest.approx((1 + 1 / 2 + 0) / 3)  # 0.5
    assert python.reranked["lp"] == 0.0
    # (0.5 - 0.25) / (2/3 - 0.25) = 0.25 / (5/12) = 0.6; lp: -0.25 / (5/12) = -0.6
    assert python.gap_closed["rm"] == pytest.approx(0.6)
    assert python.gap_closed["lp"] == pytest.approx(-0.6)
    assert (cpp.problems, cpp.n_min, cpp.n_max, cpp.unlabelled) == (1, 2, 2, 0)
    assert (cpp.greedy, cpp.random, cpp.oracle) == (1.0, 1.0, 1.0)
    assert cpp.reranked == {"rm": 1.0, "lp": 1.0}
    assert cpp.gap_closed == {"rm": None, "lp": None}  # oracle == random: nothing to close


def test_average_is_the_unweighted_mean_over_languages() -> None:
    average = summarize(table()).average
    assert average.language == AVERAGE
    assert (average.problems, average.n_min, average.n_max, average.unlabelled) == (4, 2, 4, 1)
    assert average.greedy == pytest.approx((1 / 3 + 1) / 2)
    assert average.random == pytest.approx((0.25 + 1) / 2)  # not (0.75 + 1) / 4 per problem
    assert average.oracle == pytest.approx((2 / 3 + 1) / 2)
    assert average.reranked["rm"] == pytest.approx((0.5 + 1) / 2)
    assert average.reranked["lp"] == pytest.approx((0 + 1) / 2)
    # rm: (0.75 - 0.625) / (5/6 - 0.625) = 0.125 / (5/24) = 0.6; lp: -0.125 / (5/24) = -0.6
    assert average.gap_closed["rm"] == pytest.approx(0.6)
    assert average.gap_closed["lp"] == pytest.approx(-0.6)


def test_a_tie_at_the_top_is_the_expectation_over_the_tied_candidates() -> None:
    flat = ProblemOutcome(
        "p", "go", tuple(CandidateOutcome(p, {"flat": 0.5}) for p in (True, False, False, False))
    )
    row = summarize([flat]).languages[0]
    assert row.reranked["flat"] == pytest.approx(0.25) == row.random  # scores nothing apart
    assert row.gap_closed["flat"] == pytest.approx(0.0)
    three_way = ProblemOutcome(
        "p",
        "go",
        (
            CandidateOutcome(True, {"r": 2.0}),
            CandidateOutcome(False, {"r": 2.0}),
            CandidateOutcome(True, {"r": 2.0}),
            CandidateOutcome(True, {"r": 1.0}),
        ),
    )
    assert summarize([three_way]).languages[0].reranked["r"] == pytest.approx(2 / 3)


def test_unlabelled_candidates_never_count_as_passing_and_are_counted() -> None:
    outcome = ProblemOutcome(
        "p",
        "rust",
        (
            CandidateOutcome(None, {"r": 9.0}),  # the ranker's pick: unlabelled
            CandidateOutcome(False, {"r": 1.0}),
            CandidateOutcome(None, {"r": 0.0}),
        ),
    )
    row = summarize([outcome]).languages[0]
    assert (row.reranked["r"], row.random, row.oracle, row.unlabelled) == (0.0, 0.0, 0.0, 2)
    assert row.gap_closed["r"] is None
    mixed = ProblemOutcome(
        "q", "rust", (CandidateOutcome(None, {"r": 1.0}), CandidateOutcome(True, {"r": 0.0}))
    )
    row = summarize([mixed]).languages[0]
    assert (row.random, row.oracle, row.reranked["r"]) == (0.5, 1.0, 0.0)  # n stays 2
    assert row.gap_closed["r"] == pytest.approx(-1.0)


def test_oracle_equal_to_random_everywhere_leaves_every_gap_undefined() -> None:
    all_fail = [
        ProblemOutcome(f"p{i}", lang, (cand(False, 1, 0), cand(False, 0, 1)))
        for i, lang in enumerate(["python", "cpp"])
    ]
    summary = summarize(all_fail)
    for row in (*summary.languages, summary.average):
        assert row.random == row.oracle == 0.0
        assert row.gap_closed == {"rm": None, "lp": None}


def test_greedy_not_measured_is_none_and_the_average_needs_every_language() -> None:
    outcomes = [
        ProblemOutcome("p", "python", (cand(True, 0, 0),), greedy_passed=True),
        ProblemOutcome("p", "cpp", (cand(True, 0, 0),)),
    ]
    summary = summarize(outcomes)
    assert [row.greedy for row in summary.languages] == [None, 1.0]
    assert summary.average.greedy is None


def test_no_rankers_still_gives_random_and_oracle() -> None:
    outcome = ProblemOutcome("p", "php", (CandidateOutcome(True, {}), CandidateOutcome(False, {})))
    summary = summarize([outcome])
    assert isinstance(summary, EvalSummary)
    assert summary.rankers == ()
    assert (summary.average.random, summary.average.oracle) == (0.5, 1.0)
    assert summary.average.reranked == {} == summary.average.gap_closed


@pytest.mark.parametrize(
    ("outcomes", "match"),
    [
        ([], r"no problem outcomes to summarize: pass at least one"),
        (
            [ProblemOutcome("p1", "python", ())],
            r"problem 'p1' \(python\) has no candidates: .*leave the problem out",
        ),
        (
            [
                ProblemOutcome("p1", "python", (cand(True, 1, 1),)),
                ProblemOutcome("p2", "python", (CandidateOutcome(True, {"rm": 1.0}),)),
            ],
            r"problem 'p2' \(python\), candidate 0: scored by \['rm'\], the first candidate "
            r"by \['lp', 'rm'\]: score every candidate with every ranker",
        ),
        (
            [ProblemOutcome("p1", "python", (cand(True, 1, 1), cand(True, math.nan, 1)))],
            r"candidate 1: NaN score from rm: .*-inf",
        ),
        (
            [ProblemOutcome("p1", "go", (cand(True, 1, 1),))] * 2,
            r"problem 'p1' \(go\) appears twice",
        ),
        (
            [ProblemOutcome("p1", AVERAGE, (cand(True, 1, 1),))],
            r"the language 'average' names the average row",
        ),
        (
            [
                ProblemOutcome("p1", "go", (cand(True, 1, 1),), greedy_passed=False),
                ProblemOutcome("p2", "go", (cand(True, 1, 1),)),
            ],
            r"greedy_passed is set for 1 of 2 go problems: .*a sandbox error counts as False",
        ),
    ],
)
def test_outcomes_that_cannot_be_scored_name_the_problem_and_the_fix(
    outcomes: list[ProblemOutcome], match: str
) -> None:
    with pytest.raises(InvalidOutcomesError, match=match) as raised:
        summarize(outcomes)
    assert isinstance(raised.value, InvalidArgumentError)
