"""Reward-model training with TRL's RewardTrainer on a tiny random BERT (offline, seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from codejury.reranking.manifest import Manifest
from codejury.reranking.model import RewardModel, ScoringConfig
from codejury.reranking.registry import ModelRegistry
from codejury.training.errors import NoPairsError
from codejury.training.metrics import reranked_pass_at_1
from codejury.training.pairs import PairConfig, build_pairs
from codejury.training.records import LabelledCandidate, Source
from codejury.training.registration import new_version_id, register_reward_model
from codejury.training.reward import RewardTrainingConfig, train_reward_model
from codejury.training.store import TrainingStore
from transformers import AutoModelForSequenceClassification

GOOD = [
    "    result = 0\n    for x in items:\n        result += x\n    return result\n",
    "    return a + b\n",
    "    return sorted(items)\n",
]
BAD = ["    pass\n", "    return None\n", "    raise ValueError\n"]


def _rows() -> list[LabelledCandidate]:
    rows = []
    for n in range(1, 41):
        prompt = f"def task_{n}(a, b, items):\n    '''Return the sum of a list.'''\n"
        for program in GOOD[:2]:
            rows.append(
                LabelledCandidate(
                    f"MBPP/{n}", "python", program, "PASSED", Source.CANONICAL, prompt=prompt
                )
            )
        for program, status in zip(BAD, ("FAILED", "FAILED", "RUNTIME_ERROR"), strict=True):
            rows.append(
                LabelledCandidate(
                    f"MBPP/{n}", "python", program, status, Source.MUTATION, prompt=prompt
                )
            )
    return rows


def _weights(path: Path) -> dict[str, torch.Tensor]:
    model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_training_moves_parameters_lowers_the_loss_and_registers_a_version(
    tmp_path: Path, tiny_backbone: Path
) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    registry.register(tiny_backbone, Manifest(version_id="rr-0", backbone="tiny-random-bert"))
    store = TrainingStore(tmp_path / "store")
    store.append(_rows())
    snapshot = store.snapshot()
    # The hand-made negatives are shorter than the positives on purpose (an easy set that
    # tests the training loop), so the cold start's length balance is off here.
    pairs = build_pairs(
        snapshot.rows,
        PairConfig(heldout_fraction=0.25, split_seed=1, balance_mutant_length=False),
    )
    assert pairs.heldout and pairs.train

    config = RewardTrainingConfig(epochs=3, batch_size=8, learning_rate=1e-3, device="cpu")
    steps: list[tuple[int, int]] = []
    result = train_reward_model(
        pairs,
        registry.model_dir("rr-0"),
        tmp_path / "trained",
        config,
        progress=lambda step, total: steps.append((step, total)),
    )

    before, after = _weights(tiny_backbone), _weights(result.model_dir)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "classifier.weight" in changed and any("encoder.layer" in k for k in changed)
    assert len(result.losses) == steps[-1][1] >= 10
    first, last = result.losses[:3], result.losses[-3:]
    assert sum(last) / 3 < sum(first) / 3, result.losses
    m = result.metrics
    assert m["train_pairwise_accuracy"] >= m["base_train_pairwise_accuracy"]
    assert m["train_pairwise_accuracy"] >= 0.9 and m["heldout_pairwise_accuracy"] >= 0.9
    assert m["heldout_oracle_pass_at_1"] == 1.0
    assert m["heldout_random_pass_at_1"] == pytest.approx(0.4)
    assert m["train_pairs"] == len(pairs.train) and m["dropped_too_long"] == 0

    # What serving loads scores as training measured: the same held-out pass@1.
    served = RewardModel.load(result.model_dir, version="check", config=ScoringConfig())
    problems = [
        list(
            zip(
                served.score(p.prompt, [c.program for c in p.candidates]),
                [c.passed for c in p.candidates],
                strict=True,
            )
        )
        for p in pairs.heldout_problems
    ]
    assert reranked_pass_at_1(problems) == pytest.approx(m["heldout_pass_at_1"])

    version = new_version_id(1, snapshot.snapshot_id)
    manifest = register_reward_model(
        registry,
        result.model_dir,
        version_id=version,
        parent="rr-0",
        iteration=1,
        snapshot_id=snapshot.snapshot_id,
        metrics=m,
    )
    stored = registry.get(version)
    assert stored == manifest
    assert (stored.parent, stored.iteration, stored.data_snapshot_id) == (
        "rr-0",
        1,
        snapshot.snapshot_id,
    )
    assert stored.backbone == "tiny-random-bert"
    assert stored.metrics["heldout_pass_at_1"] == m["heldout_pass_at_1"]
    assert version.startswith(f"rm-i1-{snapshot.snapshot_id[5:13]}-")


def test_no_pairs_is_a_clear_error(tmp_path: Path, tiny_backbone: Path) -> None:
    only_passing = [r for r in _rows() if r.passed]
    pairs = build_pairs(only_passing, PairConfig(heldout_fraction=0.0))
    with pytest.raises(NoPairsError, match=r"no training pairs .*`codejury train mutate`"):
        train_reward_model(pairs, tiny_backbone, tmp_path / "out", RewardTrainingConfig())
    assert not (tmp_path / "out").exists()
