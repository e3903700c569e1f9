"""PPO on a tiny random policy with a known reward: the reward rises, KL stays under target.

The reward is the fraction of generated tokens equal to a target token. The target is a
one-character token whose character no other token of the vocabulary contains, so
counting the character in the decoded completion counts exactly the target's samples.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from codejury.training.errors import TrainingDataError  # noqa: E402
from codejury.training.ppo import (  # noqa: E402
    METRIC_FIELDS,
    PPOConfig,
    last_checkpoint,
    read_metrics,
    train_ppo,
)

PROMPTS = ["def add(", "return ", "print(", "class P"]
NEW_TOKENS = 4
SANITY = PPOConfig(
    steps=30,
    batch_size=64,
    mini_batch_size=32,
    ppo_epochs=2,
    learning_rate=5e-3,
    max_new_tokens=NEW_TOKENS,
    init_kl_coef=0.1,
    kl_target=6.0,
    kl_horizon=1000,
    save_every=10,
    seed=0,
    device="cpu",
)


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from codejury.generation.tiny import build_model_dir

    return build_model_dir(tmp_path_factory.mktemp("policy") / "model", chat=False, context=128)


@pytest.fixture(scope="module")
def target(policy_dir: Path) -> str:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    texts = {i: tokenizer.decode([i]) for i in sorted(tokenizer.get_vocab().values())}
    holders = Counter(ch for text in texts.values() for ch in set(text))
    special = set(tokenizer.all_special_ids)
    return next(
        text
        for i, text in texts.items()
        if len(text) == 1 and holders[text] == 1 and i not in special and text.isprintable()
    )


def reward_for(target: str):  # type: ignore[no-untyped-def]
    def reward(prompts: list[str], completions: list[str]) -> list[float]:
        return [c.count(target) / NEW_TOKENS for c in completions]

    return reward


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_reward_rises_and_kl_stays_under_target_then_resumes(
    policy_dir: Path, target: str, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in _weights(policy_dir).items()}
    result = train_ppo(policy_dir, tmp_path, PROMPTS, reward_for(target), SANITY)

    rewards = [m["reward_mean"] for m in result.metrics]
    first, last = mean(rewards[:5]), mean(rewards[-5:])
    kl_max = max(m["kl"] for m in result.metrics)
    per_step = mean([m["seconds"] for m in result.metrics])
    print(f"target {target!r}: reward first 5 {first:.4f}, last 5 {last:.4f}, ", end="")
    print(f"KL max {kl_max:.3f} last {result.metrics[-1]['kl']:.3f}, {per_step:.3f} s/step")
    assert last > first + 0.02
    assert kl_max < SANITY.kl_target

    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 30
    assert all(set(METRIC_FIELDS) <= json.loads(line).keys() for line in lines)
    checkpoint = last_checkpoint(tmp_path)
    assert checkpoint is not None and checkpoint.name == "step-000030"
    assert (checkpoint / "value_head.pt").is_file()
    after = _weights(checkpoint / "policy")
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the policy moved

    resumed = train_ppo(
        policy_dir, tmp_path, PROMPTS, reward_for(target), replace(SANITY, steps=32)
    )
    assert resumed.start_step == 30
    assert [m["step"] for m in resumed.metrics] == [31, 32]
    assert [m["step"] for m in read_metrics(tmp_path)] == list(range(1, 33))
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-000032"


def test_with_learning_rate_zero_the_reward_does_not_rise(
    policy_dir: Path, target: str, tmp_path: Path
) -> None:
    config = replace(SANITY, learning_rate=0.0)
    result = train_ppo(policy_dir, tmp_path, PROMPTS, reward_for(target), config)
    rewards = [m["reward_mean"] for m in result.metrics]
    assert mean(rewards[-5:]) < mean(rewards[:5]) + 0.02
    assert max(abs(m["kl"]) for m in result.metrics) < 1e-4  # policy == reference


# peft reads a property transformers 5 deprecated; not ours to fix.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_lora_trains_adapters_only(policy_dir: Path, target: str, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    config = replace(SANITY, steps=2, batch_size=8, mini_batch_size=4, use_lora=True)
    config = replace(config, lora_target_modules=("q_proj", "v_proj"), learning_rate=1e-2)
    result = train_ppo(policy_dir, tmp_path, PROMPTS, reward_for(target), config)
    assert (result.checkpoint / "policy" / "adapter_config.json").is_file()
    assert len(read_metrics(tmp_path)) == 2


def test_bad_config_and_reward_name_the_field(policy_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match=r"batch_size=10 is not a multiple .* 4"):
        PPOConfig(batch_size=10, mini_batch_size=4)
    with pytest.raises(TrainingDataError, match=r"PPOConfig\.steps=0"):
        PPOConfig(steps=0)
    with pytest.raises(TrainingDataError, match="reward_fn returned 1 scores for 4"):
        train_ppo(
            policy_dir,
            tmp_path,
            PROMPTS,
            lambda p, c: [0.0],
            replace(SANITY, steps=1, batch_size=4, mini_batch_size=4),
        )
    with pytest.raises(TrainingDataError, match="no transformers model"):
        train_ppo(tmp_path, tmp_path / "out", PROMPTS, lambda p, c: [0.0] * len(c), SANITY)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def test_a_resumed_run_repeats_the_uninterrupted_one(
    policy_dir: Path, target: str, tmp_path: Path
) -> None:
    small = replace(SANITY, steps=4, batch_size=8, mini_batch_size=4, save_every=2)
    straight = train_ppo(policy_dir, tmp_path / "a", PROMPTS, reward_for(target), small)
    train_ppo(policy_dir, tmp_path / "b", PROMPTS, reward_for(target), replace(small, steps=2))
    resumed = train_ppo(policy_dir, tmp_path / "b", PROMPTS, reward_for(target), small)
    assert resumed.start_step == 2
    for a, b in zip(straight.metrics[2:], resumed.metrics, strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == pytest.approx(
            {k: v for k, v in b.items() if k != "seconds"}
        )
