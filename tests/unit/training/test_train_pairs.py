"""Bradley-Terry pairs: cap per problem, hard-negative over-sampling, split by problem."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from codejury.training.errors import TrainingDataError
from codejury.training.metrics import (
    oracle_pass_at_1,
    pairwise_accuracy,
    random_pass_at_1,
    reranked_pass_at_1,
)
from codejury.training.pairs import PairConfig, build_pairs, is_heldout, split_key
from codejury.training.records import LabelledCandidate, Source

from tests.unit.training.train_rows import row

NO_HOLDOUT = PairConfig(max_pairs_per_problem=1000, hard_negative_factor=1, heldout_fraction=0.0)


def _problem(problem_id: str, passing: int, failing: int, **kw: object) -> list[LabelledCandidate]:
    return [row(problem_id, f"    return {i}\n", **kw) for i in range(passing)] + [  # type: ignore[arg-type]
        row(problem_id, f"    return -{i}\n", status="FAILED", **kw)  # type: ignore[arg-type]
        for i in range(failing)
    ]


def test_pairs_are_passing_over_failing_within_one_problem() -> None:
    rows = _problem("MBPP/1", 2, 3) + _problem("MBPP/2", 1, 1)
    pairs = build_pairs(rows, NO_HOLDOUT)
    assert len(pairs.train) == 2 * 3 + 1
    passed = {r.program for r in rows if r.passed}
    for pair in pairs.train:
        assert pair.chosen in passed and pair.rejected not in passed
    assert {p.problem_id for p in pairs.train} == {"MBPP/1", "MBPP/2"}
    assert pairs.train_problems == 2
    # A problem with no failing (or no passing) candidate gives no pair.
    assert build_pairs(_problem("MBPP/3", 3, 0), NO_HOLDOUT).train == []


def test_the_cap_bounds_pairs_per_problem_and_keeps_hard_negatives_first() -> None:
    rows = [
        row("MBPP/1", f"    return {i}\n", score=float(i), request_id="r") for i in range(5)
    ] + [
        row("MBPP/1", "    return -1\n", status="FAILED", score=10.0, request_id="r"),  # hard
        *(row("MBPP/1", f"    return -{i}\n", status="FAILED") for i in range(2, 8)),
    ]
    config = PairConfig(max_pairs_per_problem=7, hard_negative_factor=1, heldout_fraction=0.0)
    pairs = build_pairs(rows, config)
    assert len(pairs.train) == 7  # 5 x 7 = 35 possible
    assert sum(p.hard for p in pairs.train) == 5  # all 5 hard pairs made the cut
    assert build_pairs(rows, config).train == pairs.train  # deterministic


def test_hard_negative_pairs_are_oversampled_by_the_factor_in_training_only() -> None:
    rows = [
        row("MBPP/1", "    return a + b\n", score=1.0, request_id="r"),
        row("MBPP/1", "    return a - b\n", status="FAILED", score=3.0, request_id="r"),  # hard
        row("MBPP/1", "    return 0\n", status="FAILED", score=0.0, request_id="r"),  # easy
    ]
    config = PairConfig(hard_negative_factor=3, heldout_fraction=0.0)
    pairs = build_pairs(rows, config)
    counts = Counter(p.rejected for p in pairs.train)
    assert counts == {"    return a - b\n": 3, "    return 0\n": 1}
    assert pairs.hard_pairs == 1


def test_the_split_is_by_problem_and_never_leaks_a_problem() -> None:
    rows = [r for n in range(1, 201) for r in _problem(f"MBPP/{n}", 2, 2)]
    # The same MBXP tasks in C++: a held-out task is held out in every language.
    rows += [r for n in range(1, 201) for r in _problem(f"MBCPP/{n}", 1, 2, language="cpp")]
    config = PairConfig(heldout_fraction=0.25, split_seed=7)
    pairs = build_pairs(rows, config)

    train_keys = {split_key(p.problem_id) for p in pairs.train}
    heldout_keys = {split_key(p.problem_id) for p in pairs.heldout}
    assert train_keys and heldout_keys and not train_keys & heldout_keys
    assert {split_key(p.problem_id) for p in pairs.heldout_problems} == heldout_keys
    assert 0.15 < len(heldout_keys) / 200 < 0.35
    assert split_key("MBCPP/12") == split_key("MBPP/12") == "mbxp/12"
    # Deterministic by hash, and the seed moves problems.
    again = build_pairs(list(reversed(rows)), config)
    assert {p.problem_id for p in again.heldout} == {p.problem_id for p in pairs.heldout}
    other = {n for n in range(1, 201) if is_heldout(f"MBPP/{n}", fraction=0.25, seed=8)}
    assert other != {int(k.split("/")[1]) for k in heldout_keys}
    # Held-out problems keep every candidate for pass@1.
    problem = pairs.heldout_problems[0]
    assert len(problem.candidates) in (3, 4)


def test_evaluation_only_rows_are_refused_and_counted() -> None:
    rows = (
        _problem("HumanEval_0_has_close_elements", 1, 1, dataset="")
        + _problem("CPP/0", 1, 1, dataset="", language="cpp")
        + _problem("task-1", 1, 1, dataset="multipl-e/humaneval")
        + _problem("MBPP/1", 1, 1)
    )
    pairs = build_pairs(rows, NO_HOLDOUT)
    assert pairs.refused_evaluation_rows == 6
    assert [p.problem_id for p in pairs.train] == ["MBPP/1"]


def test_missing_prompts_come_from_the_catalog_or_the_rows_are_counted() -> None:
    rows = _problem("MBPP/1", 1, 1, prompt="") + _problem("MBPP/2", 1, 1, prompt="")
    pairs = build_pairs(rows, NO_HOLDOUT, prompts={("python", "MBPP/1"): "def f():\n"})
    assert [(p.problem_id, p.prompt) for p in pairs.train] == [("MBPP/1", "def f():\n")]
    assert pairs.rows_without_prompt == 2


def test_a_program_that_both_passed_and_failed_is_left_out() -> None:
    rows = [
        row("MBPP/1", "    return flaky()\n"),
        row("MBPP/1", "    return flaky()\n", status="TIMEOUT", candidate_id="again"),
        row("MBPP/1", "    return 1\n"),
        row("MBPP/1", "    return 2\n", status="FAILED"),
    ]
    pairs = build_pairs(rows, NO_HOLDOUT)
    assert [(p.chosen, p.rejected) for p in pairs.train] == [("    return 1\n", "    return 2\n")]
    assert pairs.conflicting_programs == 1


def test_bad_pair_settings_name_the_field() -> None:
    with pytest.raises(TrainingDataError, match="hard_negative_factor 0: must be >= 1"):
        PairConfig(hard_negative_factor=0)
    with pytest.raises(TrainingDataError, match=r"heldout_fraction 1.0: must be in \[0, 1\)"):
        PairConfig(heldout_fraction=1.0)


def test_metrics() -> None:
    assert pairwise_accuracy([1, 2, 3, 0], [0, 1, 5, 0]) == 0.5
    problems = [
        [(0.9, True), (0.1, False)],  # top passes
        [(0.9, False), (0.1, True)],  # top fails
        [(0.5, True), (0.5, False)],  # tie: half
        [(0.2, False)],  # nothing passes
    ]
    assert reranked_pass_at_1(problems) == pytest.approx(1.5 / 4)
    assert random_pass_at_1(problems) == pytest.approx(1.5 / 4)
    assert oracle_pass_at_1(problems) == 0.75


def _mutants(problem_id: str, canonical: str, *mutants: str) -> list[LabelledCandidate]:
    return [row(problem_id, canonical, source=Source.CANONICAL)] + [
        row(problem_id, m, status="FAILED", source=Source.MUTATION) for m in mutants
    ]


def test_mutant_pairs_are_balanced_so_length_says_nothing() -> None:
    """Dropping a statement always shortens: unbalanced, a reward model learns 'longer
    passes' from the cold start (issue 18's bench method: 67% of HumanEval pairs)."""
    # (canonical length, mutant length) per problem: the passing side longer by 1 twice,
    # shorter by 1 once, longer by 3, shorter by 5, longer by 9 and 16, equal
    sizes = [(11, 10), (12, 11), (10, 11), (13, 10), (10, 15), (19, 10), (26, 10), (10, 10)]
    rows = [
        r for i, (c, m) in enumerate(sizes) for r in _mutants(f"MBPP/{i}", "x" * c, "y" * m)
    ] + _problem("MBPP/99", 1, 2)  # generator rows: the passing side is always the shorter
    pairs = build_pairs(rows, NO_HOLDOUT)
    deltas = sorted(len(p.chosen) - len(p.rejected) for p in pairs.train if p.mutant)
    # per scale of difference: 1 (longer 2, shorter 1: one longer dropped), 2-3 (longer
    # only), 4-7 (shorter only), 8-15 and 16-31 (longer only): all dropped; equal kept
    assert deltas == [-1, 0, 1]
    assert pairs.length_balance_dropped == 5
    assert pairs.counts()["length_balance_dropped"] == 5.0
    assert pairs.train_problems == 3 + 1  # problems left with a pair, the generator's too
    assert sum(not p.mutant for p in pairs.train) == 2  # generator pairs untouched
    assert build_pairs(rows, NO_HOLDOUT).train == pairs.train  # the drop is seeded

    unbalanced = build_pairs(rows, replace(NO_HOLDOUT, balance_mutant_length=False))
    assert sorted(len(p.chosen) - len(p.rejected) for p in unbalanced.train if p.mutant) == [
        -5,
        -1,
        0,
        1,
        1,
        3,
        9,
        16,
    ]
    assert unbalanced.length_balance_dropped == 0


def test_a_problem_whose_every_pair_is_dropped_is_not_a_training_problem() -> None:
    rows = _mutants("MBPP/1", "    x = a\n    return x\n", "    return x\n")
    pairs = build_pairs(rows, NO_HOLDOUT)
    assert pairs.train == [] and pairs.train_problems == 0
    assert pairs.length_balance_dropped == 1
