"""A ranking and the rule that picks a candidate from scores (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from codejury.proto.v1 import domain_pb2


@dataclass(frozen=True, slots=True)
class Ranking:
    """Scores of a request's candidates (same order), the pick, and who produced them."""

    scores: tuple[float, ...]
    chosen_index: int
    version: str  # a reranker version, or "baseline-<name>"
    channel: str = ""  # "stable" / "canary" in the embedded split, "" otherwise


class Ranker(Protocol):
    """Anything behind the Rank interface: the reward model or a baseline."""

    def rank(
        self,
        problem: domain_pb2.Problem,
        candidates: Sequence[domain_pb2.Candidate],
        *,
        draw: float,
    ) -> Ranking:
        """``draw`` in [0, 1) picks the stable/canary route where there is a split."""
        ...


def choose_index(scores: Sequence[float]) -> int:
    """The highest score's index; ties go to the earliest candidate, NaN never wins."""
    best, best_score = 0, -math.inf
    for i, score in enumerate(scores):
        if not math.isnan(score) and score > best_score:
            best, best_score = i, score
    return best


def ranking_of(scores: Sequence[float], version: str, channel: str = "") -> Ranking:
    return Ranking(tuple(scores), choose_index(scores), version, channel)


def scores_of(
    ranking: Ranking, candidates: Sequence[domain_pb2.Candidate], *, model_name: str
) -> list[domain_pb2.Score]:
    """The Score messages of a ranking; a baseline (no channel) names itself as the model."""
    return [
        domain_pb2.Score(
            candidate_id=candidate.candidate_id,
            score=score,
            model_name=model_name if ranking.channel else ranking.version,
            model_version=ranking.version,
        )
        for candidate, score in zip(candidates, ranking.scores, strict=True)
    ]
