"""The continuous run's trigger, and the hard-negative count it is fed."""

from __future__ import annotations

import pytest
from codejury.control.spec import TriggerSpec
from codejury.control.trigger import ScoredOutcome, count_hard_negatives, should_start_iteration

from tests.unit.control.control_cases import at

# (trigger, new hard negatives, minutes since the last iteration ended, fires, reason)
CASES = [
    (
        TriggerSpec(hard_negative_threshold=50),
        50,
        1,
        True,
        "50 new hard negatives reached the threshold 50",
    ),
    (
        TriggerSpec(hard_negative_threshold=50),
        49,
        10_000,
        False,
        "waiting: 49 of 50 new hard negatives",
    ),
    (
        TriggerSpec(schedule_interval_s=3600),
        0,
        60,
        True,
        "3600 s since the last iteration ended (interval 3600 s)",
    ),
    (
        TriggerSpec(schedule_interval_s=3600),
        1000,
        59,
        False,
        "waiting: 3540 of 3600 s since the last iteration ended",
    ),
    (
        TriggerSpec(hard_negative_threshold=50, schedule_interval_s=3600),
        10,
        61,
        True,
        "3660 s since the last iteration ended (interval 3600 s)",
    ),
    (
        TriggerSpec(hard_negative_threshold=50, schedule_interval_s=3600),
        60,
        1,
        True,
        "60 new hard negatives reached the threshold 50",
    ),
    (
        TriggerSpec(hard_negative_threshold=50, schedule_interval_s=3600),
        10,
        30,
        False,
        "waiting: 10 of 50 new hard negatives; 1800 of 3600 s since the last iteration ended",
    ),
]


@pytest.mark.parametrize(("trigger", "count", "minutes", "fires", "reason"), CASES)
def test_trigger_decisions(
    trigger: TriggerSpec, count: int, minutes: float, fires: bool, reason: str
) -> None:
    decision = should_start_iteration(trigger, count, at(0), at(minutes))
    assert (decision.fire, decision.reason) == (fires, reason)


def test_a_schedule_with_no_finished_iteration_fires() -> None:
    decision = should_start_iteration(TriggerSpec(schedule_interval_s=60), 0, None, at(0))
    assert decision.fire


def _row(
    request: str, score: float | None, passed: bool, version: str = "v1", problem: str = "MBPP/1"
) -> ScoredOutcome:
    return ScoredOutcome(request, "python", problem, score, passed, version)


HARD_NEGATIVE_CASES = [
    ("none", [], 0),
    ("failing above the passing one", [_row("r", 0.9, False), _row("r", 0.5, True)], 1),
    ("failing below every passing one", [_row("r", 0.1, False), _row("r", 0.5, True)], 0),
    ("a tie is not above", [_row("r", 0.5, False), _row("r", 0.5, True)], 0),
    (
        "above the lowest passing one counts",
        [_row("r", 0.6, False), _row("r", 0.5, True), _row("r", 0.9, True)],
        1,
    ),
    (
        "no passing candidate: nothing to rank above",
        [_row("r", 0.9, False), _row("r", 0.1, False)],
        0,
    ),
    ("other requests do not compare", [_row("a", 0.9, False), _row("b", 0.1, True)], 0),
    ("other versions do not compare", [_row("r", 0.9, False, "v2"), _row("r", 0.1, True, "v1")], 0),
    (
        "other problems do not compare",
        [_row("r", 0.9, False, problem="p2"), _row("r", 0.1, True)],
        0,
    ),
    ("unscored rows never count", [_row("r", None, False), _row("r", 0.1, True)], 0),
    (
        "each failing row counts once",
        [_row("r", 0.9, False), _row("r", 0.8, False), _row("r", 0.2, True), _row("r", 0.3, True)],
        2,
    ),
]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [c[1:] for c in HARD_NEGATIVE_CASES],
    ids=[c[0] for c in HARD_NEGATIVE_CASES],
)
def test_count_hard_negatives(rows: list[ScoredOutcome], expected: int) -> None:
    assert count_hard_negatives(rows) == expected


def test_the_count_agrees_with_the_training_store_query() -> None:
    from codejury.training.queries import hard_negatives
    from codejury.training.records import LabelledCandidate, Source

    rows: list[ScoredOutcome] = []
    for request in range(12):
        for candidate in range(6):
            score = (
                None
                if (request + candidate) % 7 == 0
                else ((request * 31 + candidate * 17) % 13) / 13
            )
            passed = (request * 5 + candidate * 3) % 4 == 0
            rows.append(_row(f"req-{request}", score, passed, version=f"v{request % 2}"))
    stored = [
        LabelledCandidate(
            problem_id=r.problem_id,
            language=r.language,
            program=f"return {i}",
            status="PASSED" if r.passed else "FAILED",
            source=Source.GENERATOR,
            score=r.score,
            score_version=r.reranker_version,
            request_id=r.request_id,
            candidate_id=str(i),
        )
        for i, r in enumerate(rows)
    ]
    expected = len(hard_negatives(stored))
    assert expected > 0
    assert count_hard_negatives(rows) == expected
