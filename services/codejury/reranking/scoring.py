"""What every way of scoring returns, and the in-process scorer.

A ``Scorer`` turns one prompt and its candidates into scores and names the version that
produced them: the reward model in this process (``InProcessScorer``) or a KServe
endpoint over gRPC or REST (``codejury.reranking.clients``). The version comes from
whoever computed the scores, never from what the caller expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from codejury.reranking.model import RewardModel


@dataclass(frozen=True, slots=True)
class Scored:
    """Scores of one request's candidates (same order) and the version that computed them."""

    scores: tuple[float, ...]
    version: str


class Scorer(Protocol):
    def score(self, prompt: str, candidates: Sequence[str]) -> Scored: ...

    def close(self) -> None: ...


class InProcessScorer:
    """The reward model loaded in this process."""

    def __init__(self, model: RewardModel) -> None:
        self._model = model

    @property
    def version(self) -> str:
        return self._model.version

    def score(self, prompt: str, candidates: Sequence[str]) -> Scored:
        return Scored(tuple(self._model.score(prompt, candidates)), self._model.version)

    def close(self) -> None:
        return None
