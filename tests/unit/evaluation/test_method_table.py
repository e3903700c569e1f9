"""The paper's table with intervals: rows, paired comparisons, Markdown."""

from __future__ import annotations

import pytest
from codejury.evaluation.errors import InvalidOutcomesError
from codejury.evaluation.method_table import RowKind, RowSpec, method_table, to_markdown
from codejury.evaluation.metrics import CandidateOutcome, ProblemOutcome

ROWS = (
    RowSpec("greedy", "greedy", RowKind.GREEDY),
    RowSpec("random", "random pick", RowKind.RANDOM),
    RowSpec("rm", "reward model", RowKind.PICK, "rm"),
    RowSpec("lp", "mean log-prob", RowKind.PICK, "lp"),
    RowSpec("oracle", "oracle", RowKind.ORACLE),
)


def _problem(
    lang: str, pid: str, passed: list[bool], rm: list[float], lp: list[float]
) -> ProblemOutcome:
    candidates = tuple(
        CandidateOutcome(p, {"rm": r, "lp": q}) for p, r, q in zip(passed, rm, lp, strict=True)
    )
    return ProblemOutcome(pid, lang, candidates, greedy_passed=passed[0])


OUTCOMES = [
    # python: rm picks the passing one twice, lp never
    _problem("python", "0", [False, True], [0.0, 1.0], [1.0, 0.0]),
    _problem("python", "1", [True, False], [1.0, 0.0], [0.0, 1.0]),
    # cpp: nothing passes
    _problem("cpp", "0", [False, False], [0.0, 1.0], [0.0, 1.0]),
]


def test_rows_and_comparisons() -> None:
    table = method_table(OUTCOMES, ROWS, [("rm", "lp"), ("rm", "random")], n_resamples=200)
    rows = {r.name: r for r in table.rows}
    assert rows["rm"].by_language["python"].estimate == 1.0
    assert rows["lp"].by_language["python"].estimate == 0.0
    assert rows["random"].by_language["python"].estimate == 0.5
    assert rows["greedy"].by_language["python"].estimate == 0.5
    assert rows["oracle"].average.estimate == 0.5  # (1 + 0) / 2: languages weigh alike
    assert table.problems == {"cpp": 1, "python": 2}
    assert table.languages == ("cpp", "python")
    rm_lp = table.comparisons[0]
    assert rm_lp.label == "reward model - mean log-prob"
    assert rm_lp.by_language["python"].low == rm_lp.by_language["python"].high == 1.0
    assert rm_lp.by_language["cpp"].estimate == 0.0
    assert rm_lp.average.estimate == 0.5
    markdown = to_markdown(table)
    assert (
        "| reward model | 0.0 [0.0, 0.0] | 100.0 [100.0, 100.0] | 50.0 [50.0, 50.0] |" in markdown
    )
    assert "**+100.0 [+100.0, +100.0]**" in markdown  # python: separable, in bold


def test_references_go_under_the_rows() -> None:
    table = method_table(OUTCOMES, ROWS, [], n_resamples=10, references={"paper": 0.709})
    assert "| paper |  |  | 70.9 |" in to_markdown(table)


def test_unknown_rows_and_duplicates_are_refused() -> None:
    with pytest.raises(InvalidOutcomesError, match="no row named nope"):
        method_table(OUTCOMES, ROWS, [("rm", "nope")], n_resamples=10)
    with pytest.raises(InvalidOutcomesError, match="appears twice"):
        method_table([*OUTCOMES, OUTCOMES[0]], ROWS, [], n_resamples=10)
    with pytest.raises(InvalidOutcomesError, match="takes a ranker name"):
        RowSpec("x", "x", RowKind.PICK)
