"""The generator's PPO defaults, written once.

Three objects carry PPO hyperparameters, one per layer: the iteration's settings
(``core.settings.TrainingSettings.ppo_*``, what ``codejury train iteration`` and the local
runtime use), a ``SelfTrainingRun``'s spec (``control.spec.PPOSettings``, what the operator
passes to its training Job) and one PPO run's config (``training.ppo_config.PPOConfig``).
Their defaults are all taken from ``PPO_DEFAULTS``; a test checks they cannot drift.
The values are CPU-sized (a laptop iteration); a GPU run raises them in its spec.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PPODefaults:
    steps: int = 10  # rollout + update steps per iteration
    batch_size: int = 8  # completions sampled per step
    mini_batch_size: int = 4  # completions per forward/backward pass
    learning_rate: float = 1e-6  # small: a few steps must not undo instruction tuning
    init_kl_coef: float = 0.05  # starting KL coefficient to the reference policy
    max_new_tokens: int = 128  # tokens sampled per completion


PPO_DEFAULTS = PPODefaults()
