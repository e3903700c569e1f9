"""The Reranking gRPC service over real KServe model servers: the embedded canary split,
pinned versions, baselines, and bad input answered with the right status."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from codejury.core.grpc import GrpcServer, make_server
from codejury.core.settings import Settings
from codejury.proto.v1 import domain_pb2, services_pb2, services_pb2_grpc
from codejury.reranking.clients import GrpcV2Scorer
from codejury.reranking.factory import load_version
from codejury.reranking.launcher import ServedModel
from codejury.reranking.registry import ModelRegistry
from codejury.reranking.requests import RankLimits
from codejury.reranking.routing import CANARY, STABLE, RewardModelRanker, Route, VersionRouter
from codejury.reranking.scoring import InProcessScorer
from codejury.reranking.service import RerankingServicer, register

# The registry the conftest builds.
STABLE_V, CANARY_V = "tiny-stable", "tiny-canary"
CORRUPT_V, MISSING_V, IDLE_V = "tiny-corrupt", "tiny-missing", "tiny-idle"

PROBLEM = domain_pb2.Problem(problem_id="HumanEval_0", language="python", prompt="def add(a, b):\n")


def _candidates(*completions: str) -> list[domain_pb2.Candidate]:
    return [
        domain_pb2.Candidate(
            candidate_id=f"c{i}", index=i, completion=c, logprob_mean=-0.1 * (3 - i)
        )
        for i, c in enumerate(completions)
    ]


GOOD = _candidates("    return a + b\n", "    return a - b\n", "    return b + a\n")


@dataclass
class Service:
    stub: services_pb2_grpc.RerankingStub
    ranker: RewardModelRanker


def _serve(
    servicer: RerankingServicer,
) -> tuple[GrpcServer, grpc.Channel, services_pb2_grpc.RerankingStub]:
    served = make_server([register(servicer)], host="127.0.0.1", port=0, max_workers=8)
    served.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{served.port}")
    return served, channel, services_pb2_grpc.RerankingStub(channel)


@pytest.fixture(scope="module")
def service(
    reranking_settings: Settings,
    tiny_registry: ModelRegistry,
    model_servers: dict[str, ServedModel],
) -> Iterator[Service]:
    def scorer(version: str) -> GrpcV2Scorer:
        return GrpcV2Scorer(
            model_servers[version].grpc_address, model_name="reranker", timeout_s=30
        )

    router = VersionRouter(
        Route(STABLE, scorer(STABLE_V), STABLE_V),
        canary=Route(CANARY, scorer(CANARY_V), CANARY_V),
        canary_weight=0.2,
        registry=tiny_registry,
    )
    ranker = RewardModelRanker(router)
    servicer = RerankingServicer(
        RankLimits.from_settings(reranking_settings.reranking),
        ranker,
        model_name="reranker",
        rng=random.Random(20250301),
    )
    served, channel, stub = _serve(servicer)
    try:
        yield Service(stub, ranker)
    finally:
        channel.close()
        served.stop(5)
        router.close()


@pytest.mark.slow  # ~8 s; the split is unit-tested (tests/unit/reranking/test_rankers.py)
def test_an_80_20_split_over_1000_requests_and_every_answer_names_its_version(
    service: Service,
) -> None:
    before = service.ranker.ledger.snapshot()
    served = []
    for _ in range(1000):
        response = service.stub.Rank(
            services_pb2.RankRequest(problem=PROBLEM, candidates=GOOD[:2]), timeout=30
        )
        assert response.served_version in (STABLE_V, CANARY_V)
        assert {s.model_version for s in response.scores} == {response.served_version}
        assert [s.candidate_id for s in response.scores] == ["c0", "c1"]
        served.append(response.served_version)
    canary_share = served.count(CANARY_V) / len(served)
    assert abs(canary_share - 0.20) <= 0.05, canary_share
    after = service.ranker.ledger.snapshot()
    assert after.get((CANARY, CANARY_V), 0) - before.get((CANARY, CANARY_V), 0) == served.count(
        CANARY_V
    )
    assert after.get((STABLE, STABLE_V), 0) - before.get((STABLE, STABLE_V), 0) == served.count(
        STABLE_V
    )


def test_the_two_versions_score_differently_and_pinning_picks_one(service: Service) -> None:
    answers = {
        version: service.stub.Rank(
            services_pb2.RankRequest(problem=PROBLEM, candidates=GOOD, version=version), timeout=30
        )
        for version in (STABLE_V, CANARY_V)
    }
    for version, answer in answers.items():
        assert answer.served_version == version
        scores = [s.score for s in answer.scores]
        assert answer.chosen_index == scores.index(max(scores))
    assert [s.score for s in answers[STABLE_V].scores] != [
        s.score for s in answers[CANARY_V].scores
    ]


def test_baselines_answer_through_the_same_interface(service: Service) -> None:
    for ranker, chosen in (("first", 0), ("logprob", 2)):
        answer = service.stub.Rank(
            services_pb2.RankRequest(problem=PROBLEM, candidates=GOOD, ranker=ranker), timeout=30
        )
        assert (answer.chosen_index, answer.served_version) == (chosen, f"baseline-{ranker}")
    random_answer = service.stub.Rank(
        services_pb2.RankRequest(problem=PROBLEM, candidates=GOOD, ranker="random"), timeout=30
    )
    assert random_answer.served_version == "baseline-random" and len(random_answer.scores) == 3


TOO_MANY_TOKENS = " ".join(["items"] * 300)  # within the 4 KiB limit, not the 128-token context


@pytest.mark.parametrize(
    ("request_fields", "code", "message"),
    [
        ({"version": "tiny-nope"}, grpc.StatusCode.NOT_FOUND, "'tiny-nope' is not registered"),
        ({"candidates": []}, grpc.StatusCode.INVALID_ARGUMENT, "candidates is empty"),
        (
            {"candidates": _candidates("x" * 5000)},
            grpc.StatusCode.INVALID_ARGUMENT,
            r"candidates\[0\].completion is 5000 bytes, over the limit of 4096",
        ),
        (
            {"candidates": _candidates("    return 0\n", TOO_MANY_TOKENS)},
            grpc.StatusCode.INVALID_ARGUMENT,
            r"candidates\[1\] has \d+ tokens, over the 125",
        ),
        ({"version": MISSING_V}, grpc.StatusCode.FAILED_PRECONDITION, "has no weights"),
        ({"version": IDLE_V}, grpc.StatusCode.FAILED_PRECONDITION, "registered but not served"),
        ({"ranker": "oracle"}, grpc.StatusCode.INVALID_ARGUMENT, "ranker 'oracle' is not known"),
    ],
)
def test_bad_input_gets_a_clear_status_and_the_server_keeps_serving(
    service: Service, request_fields: dict[str, object], code: grpc.StatusCode, message: str
) -> None:
    import re

    fields: dict[str, object] = {"problem": PROBLEM, "candidates": GOOD, **request_fields}
    with pytest.raises(grpc.RpcError) as caught:
        service.stub.Rank(services_pb2.RankRequest(**fields), timeout=30)  # type: ignore[arg-type]
    assert caught.value.code() == code
    assert re.search(message, caught.value.details()), caught.value.details()
    ok = service.stub.Rank(services_pb2.RankRequest(problem=PROBLEM, candidates=GOOD), timeout=30)
    assert len(ok.scores) == 3


def test_in_process_backend_loads_pinned_versions_and_refuses_a_corrupt_one(
    reranking_settings: Settings, tiny_registry: ModelRegistry
) -> None:
    def scorer(version: str) -> InProcessScorer:
        return InProcessScorer(load_version(reranking_settings, tiny_registry, version))

    router = VersionRouter(
        Route(STABLE, scorer(STABLE_V), STABLE_V), registry=tiny_registry, load_version=scorer
    )
    servicer = RerankingServicer(
        RankLimits.from_settings(reranking_settings.reranking),
        RewardModelRanker(router),
        model_name="reranker",
    )
    served, channel, stub = _serve(servicer)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            stub.Rank(
                services_pb2.RankRequest(problem=PROBLEM, candidates=GOOD, version=CORRUPT_V),
                timeout=30,
            )
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "cannot load the model" in caught.value.details()
        idle = stub.Rank(
            services_pb2.RankRequest(problem=PROBLEM, candidates=GOOD, version=IDLE_V), timeout=30
        )
        assert idle.served_version == IDLE_V
        assert (
            stub.Rank(services_pb2.RankRequest(problem=PROBLEM, candidates=GOOD)).served_version
            == STABLE_V
        )
    finally:
        channel.close()
        served.stop(5)
