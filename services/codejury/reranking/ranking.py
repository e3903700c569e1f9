"""A ranking, the rule that picks a candidate from scores, and the Solve's selection
policy that may put execution results first (all pure)."""

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


#: Tiers of execution-first selection, best first: a candidate that passed the caller's
#: tests; one the sandbox could not judge (a fault of ours says nothing against the
#: program); one that failed, timed out or did not compile.
_PASSED, _UNJUDGED, _FAILED = 0, 1, 2
_UNJUDGED_STATUSES = (domain_pb2.SANDBOX_ERROR, domain_pb2.EXECUTION_STATUS_UNSPECIFIED)


def resolve_selection(
    selection: domain_pb2.Selection, problem: domain_pb2.Problem
) -> domain_pb2.Selection:
    """The policy a request gets: UNSPECIFIED becomes execution first when the problem
    carries tests (the caller sent them to be used), reranker only when it has none."""
    if selection != domain_pb2.SELECTION_UNSPECIFIED:
        return selection
    if problem.tests.strip():
        return domain_pb2.SELECTION_EXECUTION_FIRST
    return domain_pb2.SELECTION_RERANKER_ONLY


def _tier(result: domain_pb2.ExecutionResult | None) -> int:
    if result is None or result.status in _UNJUDGED_STATUSES:
        return _UNJUDGED
    return _PASSED if result.status == domain_pb2.PASSED else _FAILED


def select_index(
    ranking: Ranking,
    results: Sequence[domain_pb2.ExecutionResult | None],
    selection: domain_pb2.Selection,
) -> int:
    """The candidate a Solve answers with. Reranker only: the ranking's own pick.
    Execution first: the best tier present (passed, then unjudged, then failed), and the
    reward model's choice within it, so its scores still decide among passing programs.
    ``results`` are the candidates' (same order; None where a candidate has none)."""
    if selection != domain_pb2.SELECTION_EXECUTION_FIRST or not results:
        return ranking.chosen_index
    if len(results) != len(ranking.scores):
        raise ValueError(f"{len(results)} results for {len(ranking.scores)} scores")
    tiers = [_tier(result) for result in results]
    best = min(tiers)
    within = [
        score if tier == best else -math.inf
        for score, tier in zip(ranking.scores, tiers, strict=True)
    ]
    if all(score == -math.inf or math.isnan(score) for score in within):
        return tiers.index(best)  # every score in the tier is NaN: its first candidate
    return choose_index(within)


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
