"""Reward-model metrics (pure): pairwise accuracy and reranked pass@1, with baselines.

Reranked pass@1 of a problem is whether the candidate the model scores highest passes;
when several candidates share the top score, it is the share of them that pass (the
expected outcome of breaking the tie at random). Random-pick pass@1 is the share of a
problem's candidates that pass; oracle pass@1 is whether any passes.
"""

from __future__ import annotations

from collections.abc import Sequence

ScoredCandidates = Sequence[tuple[float, bool]]  # (score, passed) of one problem's candidates


def pairwise_accuracy(chosen: Sequence[float], rejected: Sequence[float]) -> float:
    """Share of pairs whose chosen (passing) side scores strictly higher."""
    if len(chosen) != len(rejected):
        raise ValueError(f"chosen has {len(chosen)} scores, rejected {len(rejected)}")
    if not chosen:
        return 0.0
    return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(chosen)


def reranked_pass_at_1(problems: Sequence[ScoredCandidates]) -> float:
    values = []
    for candidates in problems:
        if not candidates:
            continue
        top = max(score for score, _ in candidates)
        tied = [passed for score, passed in candidates if score == top]
        values.append(sum(tied) / len(tied))
    return sum(values) / len(values) if values else 0.0


def random_pass_at_1(problems: Sequence[ScoredCandidates]) -> float:
    values = [sum(p for _, p in c) / len(c) for c in problems if c]
    return sum(values) / len(values) if values else 0.0


def oracle_pass_at_1(problems: Sequence[ScoredCandidates]) -> float:
    values = [any(p for _, p in c) for c in problems if c]
    return sum(values) / len(values) if values else 0.0
