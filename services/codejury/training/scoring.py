"""Scoring with the reward model where a program may be too long for it."""

from __future__ import annotations

from collections.abc import Sequence

from codejury.reranking.model import RewardModel


def score_fitting(model: RewardModel, prompt: str, programs: Sequence[str]) -> list[float | None]:
    """One score per program, ``None`` for a program longer than the model's context (the
    serving path refuses those, so neither PPO nor mining may invent a score for them)."""
    lengths = model.token_counts(programs)
    fitting = [i for i, n in enumerate(lengths) if n <= model.budget.content]
    scores: list[float | None] = [None] * len(programs)
    for i, score in zip(fitting, model.score(prompt, [programs[i] for i in fitting]), strict=True):
        scores[i] = score
    return scores
