"""Validation of rank requests (pure): every rejection names the field and the fix."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from codejury.core.settings import RerankingSettings
from codejury.proto.v1 import domain_pb2
from codejury.reranking.errors import InvalidRequestError
from codejury.reranking.manifest import check_version_id

REWARD_MODEL = ""  # the RankRequest.ranker value that means the reward model


@dataclass(frozen=True, slots=True)
class RankLimits:
    max_candidates: int
    max_candidate_bytes: int
    max_prompt_bytes: int

    @classmethod
    def from_settings(cls, settings: RerankingSettings) -> RankLimits:
        return cls(
            max_candidates=settings.max_candidates,
            max_candidate_bytes=settings.max_candidate_kb << 10,
            max_prompt_bytes=settings.max_prompt_kb << 10,
        )


def check_candidates(
    problem: domain_pb2.Problem,
    candidates: Sequence[domain_pb2.Candidate],
    limits: RankLimits,
) -> None:
    if not candidates:
        raise InvalidRequestError("candidates is empty: send at least one candidate")
    if len(candidates) > limits.max_candidates:
        raise InvalidRequestError(
            f"candidates has {len(candidates)} entries, over the limit of "
            f"{limits.max_candidates} (reranking.max_candidates): split the request"
        )
    prompt_bytes = len(problem.prompt.encode())
    if prompt_bytes > limits.max_prompt_bytes:
        raise InvalidRequestError(
            f"problem.prompt is {prompt_bytes} bytes, over the limit of {limits.max_prompt_bytes} "
            "(reranking.max_prompt_kb)"
        )
    for i, candidate in enumerate(candidates):
        size = len(candidate.completion.encode())
        if size > limits.max_candidate_bytes:
            raise InvalidRequestError(
                f"candidates[{i}].completion is {size} bytes, over the limit of "
                f"{limits.max_candidate_bytes} (reranking.max_candidate_kb): drop or shorten it"
            )


def check_ranker(ranker: str, version: str, *, baselines: Collection[str]) -> None:
    """The ranker is known, and a pinned version goes with the reward model only."""
    if ranker != REWARD_MODEL and ranker not in baselines:
        choices = ", ".join(repr(name) for name in sorted(baselines))
        raise InvalidRequestError(
            f"ranker {ranker!r} is not known: use '' (the reward model) or one of {choices}"
        )
    if version:
        check_version_id(version, field="version")
        if ranker != REWARD_MODEL:
            raise InvalidRequestError(
                f"version {version!r} pins a reward-model version, but ranker is {ranker!r}: "
                "leave ranker empty, or version empty for a baseline"
            )
