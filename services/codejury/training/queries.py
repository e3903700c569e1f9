"""Questions asked of stored rows (pure): hard negatives, and counts for ``train stats``.

A **hard negative** is a failing candidate that the reward model scored above a passing
candidate of the same request: the reranker would have preferred the wrong program.
Scores are only compared within one request scored by one reranker version (scores of
different versions, or of different prompts, are not on one scale); rows without a
score (mutants, canonical solutions) are never hard negatives.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from codejury.training.mining import MINED_HARD_NEGATIVE
from codejury.training.records import LabelledCandidate

_Group = tuple[str, str, str, str]  # (language, problem_id, request_id, score_version)


def _group(row: LabelledCandidate) -> _Group:
    return (row.language, row.problem_id, row.request_id, row.score_version)


def hard_negatives(rows: Iterable[LabelledCandidate]) -> list[LabelledCandidate]:
    """Failing rows scored above the lowest-scored passing row of their request, and rows
    the iteration's mining marked hard (``mining.MINED_HARD_NEGATIVE``: also those of
    problems where no sample passed)."""
    scored = [r for r in rows if r.score is not None]
    mined = [r for r in scored if not r.passed and r.detail == MINED_HARD_NEGATIVE]
    lowest_pass: dict[_Group, float] = {}
    for row in scored:
        if row.passed and row.score is not None:
            key = _group(row)
            lowest_pass[key] = min(lowest_pass.get(key, row.score), row.score)
    compared = [
        row
        for row in scored
        if not row.passed
        and row.score is not None
        and row.detail != MINED_HARD_NEGATIVE
        and _group(row) in lowest_pass
        and row.score > lowest_pass[_group(row)]
    ]
    return mined + compared


def hard_negative_ids(rows: Iterable[LabelledCandidate]) -> set[str]:
    return {row.row_id for row in hard_negatives(rows)}


@dataclass(frozen=True)
class StoreStats:
    """Row counts by (language, label, source), and hard negatives per language."""

    rows: int
    by_language_label_source: dict[tuple[str, str, str], int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    problems: dict[str, int] = field(default_factory=dict)  # language -> distinct problems
    hard_negatives: dict[str, int] = field(default_factory=dict)  # language -> count


def stats(rows: Sequence[LabelledCandidate]) -> StoreStats:
    by_key: Counter[tuple[str, str, str]] = Counter()
    by_status: Counter[str] = Counter()
    problems: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        label = "passed" if row.passed else "failed"
        by_key[(row.language, label, row.source.value)] += 1
        by_status[row.status] += 1
        problems[row.language].add(row.problem_id)
    hard = Counter(row.language for row in hard_negatives(rows))
    return StoreStats(
        rows=len(rows),
        by_language_label_source=dict(sorted(by_key.items())),
        by_status=dict(sorted(by_status.items())),
        problems={language: len(ids) for language, ids in sorted(problems.items())},
        hard_negatives=dict(sorted(hard.items())),
    )
