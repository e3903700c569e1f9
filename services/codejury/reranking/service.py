"""The Reranking gRPC service: validates, routes to a ranker, answers with the version."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping, Sequence

import grpc

from codejury.core.grpc import Registration
from codejury.proto.v1 import domain_pb2, services_pb2, services_pb2_grpc
from codejury.reranking.baselines import baseline_rankers
from codejury.reranking.errors import VersionNotServedError
from codejury.reranking.ranking import Ranker, Ranking, scores_of
from codejury.reranking.requests import REWARD_MODEL, RankLimits, check_candidates, check_ranker
from codejury.reranking.routing import RewardModelRanker


class RerankingServicer(services_pb2_grpc.RerankingServicer):
    def __init__(
        self,
        limits: RankLimits,
        reward: RewardModelRanker | None,
        *,
        model_name: str,
        baselines: Mapping[str, Ranker] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._limits = limits
        self._reward = reward
        self._model_name = model_name
        self._baselines = dict(baselines if baselines is not None else baseline_rankers())
        self._rng = rng or random.Random()  # noqa: S311 - traffic split, not security
        self._rng_lock = threading.Lock()

    def _draw(self) -> float:
        with self._rng_lock:
            return self._rng.random()

    def Rank(
        self, request: services_pb2.RankRequest, context: grpc.ServicerContext
    ) -> services_pb2.RankResponse:
        check_ranker(request.ranker, request.version, baselines=self._baselines)
        check_candidates(request.problem, request.candidates, self._limits)
        ranking = self.rank(request.problem, request.candidates, request.ranker, request.version)
        return services_pb2.RankResponse(
            scores=scores_of(ranking, request.candidates, model_name=self._model_name),
            chosen_index=ranking.chosen_index,
            served_version=ranking.version,
        )

    def rank(
        self,
        problem: domain_pb2.Problem,
        candidates: Sequence[domain_pb2.Candidate],
        ranker: str = REWARD_MODEL,
        version: str = "",
    ) -> Ranking:
        if ranker != REWARD_MODEL:
            return self._baselines[ranker].rank(problem, candidates, draw=self._draw())
        if self._reward is None:
            raise VersionNotServedError(
                "this Reranking service runs without a reward model: ask for a baseline "
                f"({', '.join(sorted(self._baselines))}) or start it with a registry version"
            )
        if version:
            return self._reward.rank_version(problem, candidates, version)
        return self._reward.rank(problem, candidates, draw=self._draw())


def register(servicer: RerankingServicer) -> Registration:
    """A registration callback for ``codejury.core.grpc.make_server``."""

    def add(server: grpc.Server) -> str:
        services_pb2_grpc.add_RerankingServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        return str(services_pb2.DESCRIPTOR.services_by_name["Reranking"].full_name)

    return add
