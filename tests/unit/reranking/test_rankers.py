"""Baselines, the pick rule, the stable/canary split and who-served-what (no models)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from codejury.proto.v1 import domain_pb2
from codejury.reranking.baselines import baseline_rankers
from codejury.reranking.errors import (
    CorruptVersionError,
    ModelServerError,
    UnknownVersionError,
    VersionNotServedError,
)
from codejury.reranking.manifest import Manifest
from codejury.reranking.ranking import choose_index
from codejury.reranking.registry import ModelRegistry
from codejury.reranking.routing import (
    CANARY,
    STABLE,
    RewardModelRanker,
    Route,
    VersionRouter,
    choose_channel,
    draw_for_key,
)
from codejury.reranking.scoring import Scored

PROBLEM = domain_pb2.Problem(problem_id="p1", language="python", prompt="def f():\n")


def _candidates(*logprobs: float) -> list[domain_pb2.Candidate]:
    return [
        domain_pb2.Candidate(
            candidate_id=f"c{i}", index=i, completion=f"return {i}", logprob_mean=lp
        )
        for i, lp in enumerate(logprobs)
    ]


class FakeScorer:
    """Scores by candidate length and names a fixed version."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.calls = 0

    def score(self, prompt: str, candidates: Sequence[str]) -> Scored:
        self.calls += 1
        return Scored(tuple(float(len(c)) for c in candidates), self.version)

    def close(self) -> None:
        pass


def test_choose_index_takes_the_highest_and_the_earliest_on_ties() -> None:
    assert choose_index([0.1, 0.9, 0.3]) == 1
    assert choose_index([0.5, 0.9, 0.9]) == 1
    assert choose_index([float("nan"), -1.0]) == 1
    assert choose_index([float("nan")]) == 0


def test_baselines() -> None:
    rankers = baseline_rankers()
    candidates = _candidates(-0.9, -0.1, -0.5)
    logprob = rankers["logprob"].rank(PROBLEM, candidates, draw=0.0)
    assert (logprob.chosen_index, logprob.version) == (1, "baseline-logprob")
    first = rankers["first"].rank(PROBLEM, candidates, draw=0.0)
    assert (first.chosen_index, first.scores) == (0, (1.0, 0.0, 0.0))
    picks = {rankers["random"].rank(PROBLEM, candidates, draw=d).chosen_index for d in (0, 0.5)}
    assert len(picks) == 1, "random is seeded by the request: a retry picks the same"
    many = _candidates(*([0.0] * 8))
    chosen = {
        rankers["random"].rank(domain_pb2.Problem(problem_id=f"p{i}"), many, draw=0.0).chosen_index
        for i in range(40)
    }
    assert len(chosen) > 3, "different requests pick different candidates"


def test_the_split_is_pure_and_draws_per_key_are_stable_and_uniform() -> None:
    assert choose_channel(0.19, canary_weight=0.2, has_canary=True) == CANARY
    assert choose_channel(0.2, canary_weight=0.2, has_canary=True) == STABLE
    assert choose_channel(0.0, canary_weight=0.2, has_canary=False) == STABLE
    assert draw_for_key("req-1") == draw_for_key("req-1")
    draws = [draw_for_key(f"req-{i}") for i in range(4000)]
    assert all(0 <= d < 1 for d in draws)
    assert abs(sum(d < 0.2 for d in draws) / len(draws) - 0.2) < 0.03


def test_router_splits_by_weight_and_the_ledger_records_every_version() -> None:
    stable, canary = FakeScorer("v1"), FakeScorer("v2")
    router = VersionRouter(
        Route(STABLE, stable, "v1"), canary=Route(CANARY, canary, "v2"), canary_weight=0.2
    )
    ranker = RewardModelRanker(router)
    rng = random.Random(7)
    versions = [
        ranker.rank(PROBLEM, _candidates(0, 0), draw=rng.random()).version for _ in range(1000)
    ]
    share = versions.count("v2") / len(versions)
    assert abs(share - 0.2) < 0.05
    assert ranker.ledger.snapshot() == {
        (STABLE, "v1"): versions.count("v1"),
        (CANARY, "v2"): versions.count("v2"),
    }


def test_pinned_versions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    registry = ModelRegistry(tmp_path / "registry")
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"w")
    for version in ("v1", "v3", "broken"):
        registry.register(model, Manifest(version_id=version, backbone="b"))
    (registry.root / "versions" / "broken" / "model" / "config.json").unlink()
    router = VersionRouter(Route(STABLE, FakeScorer("v1"), "v1"), registry=registry)
    ranker = RewardModelRanker(router)

    assert ranker.rank_version(PROBLEM, _candidates(0), "v1").version == "v1"
    with pytest.raises(UnknownVersionError, match=r"'v9' is not registered"):
        ranker.rank_version(PROBLEM, _candidates(0), "v9")
    with pytest.raises(CorruptVersionError, match=r"'broken'.*no config.json"):
        ranker.rank_version(PROBLEM, _candidates(0), "broken")
    with pytest.raises(VersionNotServedError, match=r"'v3' is registered but not served.*v1"):
        ranker.rank_version(PROBLEM, _candidates(0), "v3")

    loaded: list[str] = []

    def load(version: str) -> FakeScorer:
        loaded.append(version)
        return FakeScorer(version)

    on_demand = RewardModelRanker(
        VersionRouter(Route(STABLE, FakeScorer("v1"), "v1"), registry=registry, load_version=load)
    )
    assert on_demand.rank_version(PROBLEM, _candidates(0), "v3").version == "v3"
    assert on_demand.rank_version(PROBLEM, _candidates(0), "v3").version == "v3"
    assert loaded == ["v3"]  # loaded once, then kept


def test_a_server_answering_as_another_version_is_caught() -> None:
    router = VersionRouter(Route(STABLE, FakeScorer("v-old"), "v1"))
    ranker = RewardModelRanker(router)
    with pytest.raises(ModelServerError, match=r"'v1' was asked for.*answered as 'v-old'"):
        ranker.rank_version(PROBLEM, _candidates(0), "v1")
    # Unpinned: the answer's version is what is reported, whatever was expected.
    assert ranker.rank(PROBLEM, _candidates(0), draw=0.5).version == "v-old"
