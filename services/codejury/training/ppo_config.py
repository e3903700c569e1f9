"""``PPOConfig``: the hyperparameters of one PPO run, each field with its help text."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from codejury.core.ppo_defaults import PPO_DEFAULTS
from codejury.training.errors import TrainingDataError


@dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters of one PPO run (CPU-sized defaults; the ones an iteration passes
    come from ``core.ppo_defaults``)."""

    steps: int = field(
        default=PPO_DEFAULTS.steps, metadata={"help": "PPO steps (rollout + update) in all."}
    )
    batch_size: int = field(
        default=PPO_DEFAULTS.batch_size, metadata={"help": "Completions sampled per step."}
    )
    mini_batch_size: int = field(
        default=PPO_DEFAULTS.mini_batch_size,
        metadata={"help": "Completions per forward/backward pass in the update."},
    )
    gradient_accumulation_steps: int = field(
        default=1,
        metadata={
            "help": "Mini-batches whose gradients are summed per optimiser step; "
            "batch_size must be a multiple of mini_batch_size * gradient_accumulation_steps."
        },
    )
    ppo_epochs: int = field(default=2, metadata={"help": "Passes over each batch per step."})
    learning_rate: float = field(
        default=PPO_DEFAULTS.learning_rate, metadata={"help": "Adam learning rate."}
    )
    max_grad_norm: float = field(
        default=1.0, metadata={"help": "Gradient-norm clip per optimiser step; 0 disables."}
    )
    max_new_tokens: int = field(
        default=PPO_DEFAULTS.max_new_tokens, metadata={"help": "Tokens sampled per completion."}
    )
    temperature: float = field(
        default=1.0, metadata={"help": "Sampling temperature; log-probs use the same one."}
    )
    gamma: float = field(default=1.0, metadata={"help": "GAE discount."})
    lam: float = field(default=0.95, metadata={"help": "GAE lambda."})
    clip_range: float = field(
        default=0.2, metadata={"help": "Policy ratio clip: ratios outside 1 +- clip_range."}
    )
    clip_range_value: float = field(
        default=0.2, metadata={"help": "How far a value may move from its rollout value."}
    )
    vf_coef: float = field(default=0.1, metadata={"help": "Weight of the value loss."})
    init_kl_coef: float = field(
        default=PPO_DEFAULTS.init_kl_coef,
        metadata={"help": "Initial coefficient of the per-token KL penalty."},
    )
    adaptive_kl: bool = field(
        default=True,
        metadata={"help": "Steer the KL coefficient towards kl_target (Ziegler et al.)."},
    )
    kl_target: float = field(
        default=6.0, metadata={"help": "Target KL per completion, in nats (adaptive_kl)."}
    )
    kl_horizon: int = field(
        default=10000, metadata={"help": "Adaptive controller horizon, in completions."}
    )
    whiten_rewards: bool = field(
        default=False, metadata={"help": "Whiten the scores across each batch before use."}
    )
    save_every: int = field(
        default=50, metadata={"help": "Checkpoint every this many steps (and at the end)."}
    )
    keep_checkpoints: int = field(
        default=2, metadata={"help": "Checkpoints kept; older ones are deleted."}
    )
    seed: int = field(default=0, metadata={"help": "Seeds torch (sampling and init)."})
    device: str = field(default="auto", metadata={"help": "auto: cuda when available."})
    precision: Literal["auto", "float32", "bfloat16"] = field(
        default="auto", metadata={"help": "auto: bfloat16 on a GPU that has it, else float32."}
    )
    use_lora: bool = field(
        default=False,
        metadata={"help": "Train LoRA adapters (peft) instead of all weights: large models."},
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    lora_target_modules: tuple[str, ...] | None = field(
        default=None, metadata={"help": "Modules to adapt; None: peft's default for the model."}
    )

    def __post_init__(self) -> None:
        positive = (
            "steps",
            "batch_size",
            "mini_batch_size",
            "gradient_accumulation_steps",
            "ppo_epochs",
            "max_new_tokens",
            "save_every",
            "keep_checkpoints",
            "kl_horizon",
        )
        for name in positive:
            value = getattr(self, name)
            if value < 1:
                raise TrainingDataError(f"PPOConfig.{name}={value}: must be at least 1")
        per_update = self.mini_batch_size * self.gradient_accumulation_steps
        if self.batch_size % per_update:
            raise TrainingDataError(
                f"PPOConfig.batch_size={self.batch_size} is not a multiple of mini_batch_size "
                f"* gradient_accumulation_steps = {per_update}: set batch_size to a multiple "
                f"of {per_update}"
            )
        if self.temperature <= 0:
            raise TrainingDataError(
                f"PPOConfig.temperature={self.temperature}: must be > 0 (PPO samples)"
            )
        if self.kl_target <= 0:
            raise TrainingDataError(f"PPOConfig.kl_target={self.kl_target}: must be > 0")
        if self.learning_rate < 0:
            raise TrainingDataError(f"PPOConfig.learning_rate={self.learning_rate}: must be >= 0")


def config_dict(config: PPOConfig) -> dict[str, Any]:
    """The config as JSON-able values (for a run's manifest)."""
    values = asdict(config)
    if values["lora_target_modules"] is not None:
        values["lora_target_modules"] = list(values["lora_target_modules"])
    return values
