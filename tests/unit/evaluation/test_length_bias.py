"""Length against the labels and against each ranker: within problems only, ties skipped."""

from __future__ import annotations

import pytest
from codejury.evaluation.length_bias import Preference, describe, length_report, share
from codejury.evaluation.metrics import CandidateOutcome, ProblemOutcome


def _problem(pid: str, *cands: tuple[str, bool | None, dict[str, float]]) -> ProblemOutcome:
    return ProblemOutcome(
        pid,
        "python",
        tuple(CandidateOutcome(passed, scores, completion) for completion, passed, scores in cands),
    )


def test_a_ranker_that_follows_length_prefers_the_longer_in_every_pair() -> None:
    outcomes = [
        _problem(
            "a",
            ("x" * 10, True, {"len": 10.0, "rm": 1.0}),
            ("x" * 30, False, {"len": 30.0, "rm": 2.0}),
            ("x" * 50, False, {"len": 50.0, "rm": 0.5}),
        )
    ]
    report = length_report(outcomes, ["len", "rm"])
    assert report.rankers["len"] == Preference(1.0, 3)
    # rm: 30 over 10 (longer wins), 10 over 50 and 30 over 50 (shorter wins)
    assert report.rankers["rm"] == Preference(pytest.approx(1 / 3), 3)
    # (passing, failing) pairs: the passing one (10 chars) is the shorter in both
    assert report.labels == Preference(0.0, 2)
    assert report.passing_median_chars == 10
    assert report.failing_median_chars == 40


def test_pairs_of_equal_length_or_score_and_pairs_across_problems_do_not_count() -> None:
    outcomes = [
        _problem("a", ("ab", True, {"rm": 1.0}), ("cd", False, {"rm": 0.0})),  # equal length
        _problem("b", ("abc", False, {"rm": 1.0}), ("abcdef", True, {"rm": 1.0})),  # tie
        _problem("c", ("a" * 100, False, {"rm": 9.0})),  # alone: no pair
    ]
    report = length_report(outcomes, ["rm"])
    assert report.rankers["rm"] == Preference(None, 0)
    assert share(report.rankers["rm"]) == "-"
    # only problem b's pair has different lengths and different labels: longer passes
    assert report.labels == Preference(1.0, 1)


def test_unlabelled_candidates_fail_and_a_missing_score_skips_the_pair() -> None:
    outcomes = [
        _problem(
            "a",
            ("x", None, {"rm": 0.0}),
            ("xxxx", True, {"rm": 1.0}),
            ("xx", False, {}),
        )
    ]
    report = length_report(outcomes, ["rm"])
    assert report.labels == Preference(1.0, 2)  # the passing one is the longer of both pairs
    assert report.rankers["rm"] == Preference(1.0, 1)  # the pair without a score is skipped
    assert report.failing_median_chars == 1.5
    assert share(report.rankers["rm"]) == "100% of 1 pairs"


def test_no_passing_candidate_leaves_its_median_unknown() -> None:
    report = length_report([_problem("a", ("x", False, {}), ("xy", False, {}))], [])
    assert report.passing_median_chars is None
    assert report.labels == Preference(None, 0)


def test_the_description_names_each_ranker_with_its_share() -> None:
    outcomes = [
        _problem(
            "a",
            ("x" * 10, True, {"rm": 2.0, "lp": 0.0}),
            ("x" * 30, False, {"rm": 3.0, "lp": -1.0}),
        )
    ]
    labels, rankers = describe(
        length_report(outcomes, ["lp", "rm"]), {"rm": "RM", "lp": "log-prob"}
    )
    assert "median of 10 characters, failing ones 30" in labels
    assert "the longer in 0% of 1 pairs" in labels
    assert "RM 100% of 1 pairs; log-prob 0% of 1 pairs" in rankers
