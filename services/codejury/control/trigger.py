"""When a continuous run starts its next iteration, and the hard-negative count it uses.

The trigger fires when either of its conditions holds: at least
``hard_negative_threshold`` new hard negatives were stored since the last iteration
ended, or ``schedule_interval_s`` seconds passed since then.

A **hard negative** is a failing candidate that the reranker scored above a passing
candidate of the same request: it would have preferred the wrong program. Scores are
compared only within one request scored by one reranker version; candidates without a
score are never hard negatives. This restates ``codejury.training.queries.hard_negatives``
over a small row of its own, because control sits beside training, not above its
internals; a test checks the two agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from codejury.control.spec import TriggerSpec


@dataclass(frozen=True)
class TriggerDecision:
    fire: bool
    reason: str


def should_start_iteration(
    trigger: TriggerSpec,
    new_hard_negatives: int,
    last_finished_at: datetime | None,
    now: datetime,
) -> TriggerDecision:
    """Whether to start the next iteration now, and why (or why not)."""
    threshold = trigger.hard_negative_threshold
    interval = trigger.schedule_interval_s
    if threshold is not None and new_hard_negatives >= threshold:
        return TriggerDecision(
            True, f"{new_hard_negatives} new hard negatives reached the threshold {threshold}"
        )
    if interval is not None:
        if last_finished_at is None:
            return TriggerDecision(True, "no iteration has finished yet")
        elapsed = (now - last_finished_at).total_seconds()
        if elapsed >= interval:
            return TriggerDecision(
                True, f"{elapsed:.0f} s since the last iteration ended (interval {interval:.0f} s)"
            )
    waiting = []
    if threshold is not None:
        waiting.append(f"{new_hard_negatives} of {threshold} new hard negatives")
    if interval is not None and last_finished_at is not None:
        elapsed = (now - last_finished_at).total_seconds()
        waiting.append(f"{elapsed:.0f} of {interval:.0f} s since the last iteration ended")
    return TriggerDecision(False, "waiting: " + "; ".join(waiting))


@dataclass(frozen=True)
class ScoredOutcome:
    """One labelled candidate as the trigger sees it (a feedback row, reduced)."""

    request_id: str
    language: str
    problem_id: str
    score: float | None  # the reranker's score; None: not scored (mutant, canonical)
    passed: bool
    reranker_version: str  # the version that gave ``score``


def count_hard_negatives(rows: Iterable[ScoredOutcome]) -> int:
    """Failing rows scored above the lowest-scored passing row of their request and
    version."""
    scored = [row for row in rows if row.score is not None]
    lowest_pass: dict[tuple[str, str, str, str], float] = {}
    for row in scored:
        if row.passed and row.score is not None:
            key = _group(row)
            lowest_pass[key] = min(lowest_pass.get(key, row.score), row.score)
    return sum(
        1
        for row in scored
        if not row.passed
        and row.score is not None
        and _group(row) in lowest_pass
        and row.score > lowest_pass[_group(row)]
    )


def _group(row: ScoredOutcome) -> tuple[str, str, str, str]:
    return (row.language, row.problem_id, row.request_id, row.reranker_version)
