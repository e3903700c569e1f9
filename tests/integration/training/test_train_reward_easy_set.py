"""The reward model learns an easy labelled set: MBXP's canonical Python solutions against
empty or broken bodies of the same problems, measured on held-out problems."""

from __future__ import annotations

from pathlib import Path

from codejury.training.coldstart import mbxp_problems
from codejury.training.pairs import PairConfig, build_pairs
from codejury.training.records import LabelledCandidate, Source
from codejury.training.reward import RewardTrainingConfig, train_reward_model

BROKEN = ("    pass\n", "    return None\n", "    raise NotImplementedError\n")


def test_canonical_solutions_beat_empty_bodies_on_held_out_problems(
    tmp_path: Path, data_dir: Path, tiny_backbone: Path
) -> None:
    rows = []
    for p in mbxp_problems(data_dir, "python", 80):
        assert p.canonical_solution
        prompt, pid = p.problem.prompt, p.problem.problem_id
        rows.append(
            LabelledCandidate(
                pid, "python", p.canonical_solution, "PASSED", Source.CANONICAL, prompt=prompt
            )
        )
        rows += [
            LabelledCandidate(pid, "python", body, "FAILED", Source.MUTATION, prompt=prompt)
            for body in BROKEN
        ]
    # Empty bodies are shorter than every solution: the set is easy on purpose, so the
    # cold start's length balance (which would drop every pair) is off here.
    pairs = build_pairs(
        rows, PairConfig(heldout_fraction=0.25, split_seed=3, balance_mutant_length=False)
    )
    assert len(pairs.heldout_problems) >= 10 and pairs.train_problems >= 40

    config = RewardTrainingConfig(epochs=4, batch_size=8, learning_rate=1e-3, device="cpu")
    result = train_reward_model(pairs, tiny_backbone, tmp_path / "model", config)
    m = result.metrics
    # The problems held out were never trained on: the model learned what a body is.
    assert m["heldout_pairwise_accuracy"] > 0.9, m
    assert m["heldout_pass_at_1"] > m["heldout_random_pass_at_1"], m
    assert m["heldout_pairwise_accuracy"] > m["base_heldout_pairwise_accuracy"], m
