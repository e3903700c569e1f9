"""Baselines behind the same Rank interface as the reward model.

- ``random``: a uniform pick, seeded by the request's candidates so a retried request
  gets the same pick (the Kafka stage is at-least-once);
- ``logprob``: the generator's mean token log-probability, highest first;
- ``first``: the first candidate, i.e. no reranking at all.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence

from codejury.proto.v1 import domain_pb2
from codejury.reranking.ranking import Ranker, Ranking, ranking_of

BASELINE_PREFIX = "baseline-"


def _seed(problem: domain_pb2.Problem, candidates: Sequence[domain_pb2.Candidate]) -> int:
    digest = hashlib.sha256(problem.problem_id.encode())
    for candidate in candidates:
        digest.update(
            b"\0" + candidate.candidate_id.encode() + b"\0" + candidate.completion.encode()
        )
    return int.from_bytes(digest.digest()[:8], "big")


class RandomRanker:
    version = BASELINE_PREFIX + "random"

    def rank(
        self,
        problem: domain_pb2.Problem,
        candidates: Sequence[domain_pb2.Candidate],
        *,
        draw: float,
    ) -> Ranking:
        rng = random.Random(_seed(problem, candidates))  # noqa: S311 - a baseline, not security
        return ranking_of([rng.random() for _ in candidates], self.version)


class LogprobRanker:
    version = BASELINE_PREFIX + "logprob"

    def rank(
        self,
        problem: domain_pb2.Problem,
        candidates: Sequence[domain_pb2.Candidate],
        *,
        draw: float,
    ) -> Ranking:
        return ranking_of([c.logprob_mean for c in candidates], self.version)


class FirstRanker:
    version = BASELINE_PREFIX + "first"

    def rank(
        self,
        problem: domain_pb2.Problem,
        candidates: Sequence[domain_pb2.Candidate],
        *,
        draw: float,
    ) -> Ranking:
        return ranking_of([1.0] + [0.0] * (len(candidates) - 1), self.version)


def baseline_rankers() -> Mapping[str, Ranker]:
    """The baselines by the name a RankRequest's ``ranker`` field uses."""
    return {"random": RandomRanker(), "logprob": LogprobRanker(), "first": FirstRanker()}
