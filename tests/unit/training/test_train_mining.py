"""Hard-negative mining: which failing samples count as hard, and how pairs see them."""

from __future__ import annotations

import pytest
from codejury.training.errors import TrainingDataError
from codejury.training.mining import MINED_HARD_NEGATIVE, ScoredSample, mine_hard_negatives
from codejury.training.pairs import PairConfig, build_pairs
from codejury.training.queries import hard_negatives
from codejury.training.records import LabelledCandidate, Source


def s(pid: str, cid: str, passed: bool, score: float | None, lang: str = "python") -> ScoredSample:
    return ScoredSample(lang, pid, cid, passed, score)


def test_failing_samples_above_the_lowest_passing_one_are_hard() -> None:
    samples = [
        s("P1", "pass-hi", True, 0.9),
        s("P1", "pass-lo", True, 0.2),
        s("P1", "fail-above-lo", False, 0.5),  # the reranker would put it before pass-lo
        s("P1", "fail-below", False, 0.1),
        s("P1", "fail-tie", False, 0.2),  # equal is not above
        s("P1", "fail-unscored", False, None),
    ]
    hard, report = mine_hard_negatives(samples, {}, quantile=0.5)
    assert hard == {"fail-above-lo"}
    assert (report.above_passing, report.above_quantile, report.hard_negatives) == (1, 0, 1)
    assert (report.problems, report.samples, report.passing, report.failing) == (1, 6, 2, 4)
    assert report.unscored == 1 and report.problems_with_pass == 1


def test_without_a_passing_sample_the_quantile_of_known_passing_programs_decides() -> None:
    samples = [s("P2", "a", False, 0.75), s("P2", "b", False, 0.45), s("P2", "c", False, 0.2)]
    reference = {("python", "P2"): [0.1, 0.4, 0.5, 0.7]}
    median, _ = mine_hard_negatives(samples, reference, quantile=0.5)  # nearest rank: 0.4
    assert median == {"a", "b"}
    top, report = mine_hard_negatives(samples, reference, quantile=1.0)  # above the best: 0.7
    assert top == {"a"}
    assert report.above_quantile == 1 and report.above_passing == 0


def test_a_problem_with_no_reference_yields_nothing_and_is_counted() -> None:
    samples = [s("P3", "a", False, 5.0), s("P4", "b", False, 5.0, lang="cpp")]
    hard, report = mine_hard_negatives(samples, {("cpp", "P4"): [1.0]}, quantile=0.5)
    assert hard == {"b"}
    assert report.problems_without_reference == 1
    assert report.by_language == {"cpp": 1}
    assert report.metrics()["mining_hard_negatives"] == 1.0


def test_problems_are_compared_only_with_themselves() -> None:
    samples = [s("P1", "pass", True, 0.9), s("P5", "fail", False, 0.95)]
    hard, _ = mine_hard_negatives(samples, {}, quantile=0.5)
    assert hard == set()  # P5 has no passing sample and no reference


@pytest.mark.parametrize("quantile", [-0.1, 1.5])
def test_a_bad_quantile_is_refused_with_the_setting_named(quantile: float) -> None:
    with pytest.raises(TrainingDataError, match=r"training.mining_quantile .* must be in \[0, 1\]"):
        mine_hard_negatives([], {}, quantile=quantile)


def test_mined_rows_are_hard_for_the_store_and_for_pairs() -> None:
    """A sample mined by the quantile rule has no passing sample of its request to be
    compared with; its mark makes it hard all the same, and pairs over-sample it."""
    prompt = "def f(x):\n"

    def row(program: str, status: str, source: Source, **kw: object) -> LabelledCandidate:
        return LabelledCandidate("MBPP/3", "python", program, status, source, prompt=prompt, **kw)  # type: ignore[arg-type]

    rows = [
        row("    return x\n", "PASSED", Source.CANONICAL),
        row(
            "    return -x\n",
            "FAILED",
            Source.GENERATOR,
            score=0.9,
            score_version="it",
            request_id="iteration-1",
            detail=MINED_HARD_NEGATIVE,
        ),
        row(
            "    return 0\n",
            "FAILED",
            Source.GENERATOR,
            score=0.1,
            score_version="it",
            request_id="iteration-1",
        ),
    ]
    assert [r.program for r in hard_negatives(rows)] == ["    return -x\n"]
    pairs = build_pairs(rows, PairConfig(heldout_fraction=0.0, hard_negative_factor=3))
    rejected = [p.rejected for p in pairs.train]
    assert rejected.count("    return -x\n") == 3 and rejected.count("    return 0\n") == 1
    assert pairs.hard_pairs == 1
