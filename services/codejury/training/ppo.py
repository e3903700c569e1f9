"""PPO for the generator (Schulman et al. 2017, as applied to LMs by Ziegler et al. 2019).

One step:

1. sample ``batch_size`` completions of the step's prompts from the policy;
2. score them with ``reward_fn(prompts, completions)`` (optionally whitened across the
   batch); the per-token reward is ``-kl_coef * (log p - log p_ref)`` at every response
   token plus the score at the last one;
3. values from the value head, advantages and returns by GAE, advantages whitened;
4. ``ppo_epochs`` passes over the batch in mini-batches, each loss
   ``policy_loss + vf_coef * value_loss`` (both clipped), gradients accumulated over
   ``gradient_accumulation_steps`` mini-batches per optimiser step;
5. the KL controller is updated with the measured KL; one line of metrics is appended to
   ``<output_dir>/metrics.jsonl``; every ``save_every`` steps and at the end a checkpoint
   (policy, value head, optimiser, KL coefficient, RNG state) is written atomically to
   ``<output_dir>/checkpoints/step-NNNNNN``. A rerun resumes from the last one.

The actor is the policy (a transformers causal LM, or LoRA adapters on it via peft); the
value head is a separate linear layer on the policy's last hidden state; the reference
is a frozen copy of the starting policy (with LoRA: the policy with its adapters off).
The arithmetic lives in ``ppo_math``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codejury.core.devices import choose_device, choose_dtype
from codejury.core.logging import get_logger
from codejury.training.errors import TrainingDataError, TrainingDependencyError, TrainingError

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - the train extra is installed in tests
    raise TrainingDependencyError(
        f"PPO needs the train extra ({exc.name} is missing): pip install -e '.[train]'"
    ) from exc

from codejury.training import ppo_math
from codejury.training.ppo_config import PPOConfig
from codejury.training.ppo_outputs import (
    METRIC_FIELDS,
    METRICS_FILE,
    append_metrics,
    last_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    read_metrics,
    read_state,
    save_checkpoint,
    truncate_metrics,
)

__all__ = [
    "METRICS_FILE",
    "METRIC_FIELDS",
    "PPOConfig",
    "PPOResult",
    "RewardFn",
    "ValueHead",
    "last_checkpoint",
    "read_metrics",
    "train_ppo",
]

log = get_logger(__name__)

RewardFn = Callable[[list[str], list[str]], list[float]]  # (prompts, completions) -> scores
Progress = Callable[[int, int], None]  # (steps done, total steps)


@dataclass(frozen=True)
class PPOResult:
    output_dir: Path
    checkpoint: Path  # the last checkpoint written (the final policy and value head)
    start_step: int  # 0, or the step resumed from
    steps: int
    metrics: list[dict[str, float]]  # one per step run now (not those before a resume)


def train_ppo(
    policy_dir: Path,
    output_dir: Path,
    prompts: Sequence[str],
    reward_fn: RewardFn,
    config: PPOConfig,
    *,
    progress: Progress | None = None,
) -> PPOResult:
    """Align the causal LM in ``policy_dir`` to ``reward_fn`` on ``prompts``.

    Resumes from the last checkpoint under ``output_dir`` when there is one. Step ``i``
    uses prompts ``i * batch_size ...`` (cycling), so a resumed run sees what an
    uninterrupted one would.
    """
    if not prompts:
        raise TrainingDataError("prompts is empty: PPO needs at least one prompt to sample from")
    if not (policy_dir / "config.json").is_file():
        raise TrainingDataError(
            f"policy_dir={policy_dir} holds no transformers model (no config.json): pass the "
            "directory a causal LM was saved to with save_pretrained"
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = last_checkpoint(output_dir)
    start_step: int = read_state(checkpoint)["step"] if checkpoint else 0
    trainer = _build_trainer(policy_dir, config, checkpoint)
    truncate_metrics(output_dir, start_step)

    metrics: list[dict[str, float]] = []
    last = checkpoint
    for step in range(start_step, config.steps):
        batch = [
            prompts[(step * config.batch_size + i) % len(prompts)] for i in range(config.batch_size)
        ]
        started = time.monotonic()
        record = trainer.step(batch, reward_fn)
        record = {"step": step + 1, **record, "seconds": time.monotonic() - started}
        metrics.append(record)
        append_metrics(output_dir, record)
        done = step + 1
        if done % config.save_every == 0 or done == config.steps:
            last = save_checkpoint(
                output_dir,
                done,
                policy=trainer.policy,
                value_head=trainer.value_head,
                optimizer=trainer.optimizer,
                kl_coef=trainer.kl_ctl.coef,
            )
            prune_checkpoints(output_dir, config.keep_checkpoints)
        if progress:
            progress(done, config.steps)
    if last is None:  # unreachable: steps >= 1, so a fresh run saves at least once
        raise TrainingError(f"PPOConfig.steps={config.steps}: no step ran and no checkpoint exists")
    return PPOResult(output_dir, last, start_step, config.steps, metrics)


def _build_trainer(policy_dir: Path, config: PPOConfig, checkpoint: Path | None) -> _Trainer:
    """Policy (from the checkpoint when resuming), reference, value head, optimiser."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise TrainingDependencyError(
            f"PPO needs the train extra ({exc.name} is missing): pip install -e '.[train]'"
        ) from exc
    device = choose_device(config.device, field="PPOConfig.device")
    dtype = choose_dtype(config.precision, device)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token

    torch.manual_seed(config.seed)
    policy: Any = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=dtype)
    reference: Any = None
    if config.use_lora:
        policy = _with_lora(policy, config, checkpoint)
    else:
        reference = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=dtype)
        reference.requires_grad_(False).eval().to(device)
        if checkpoint:
            policy = AutoModelForCausalLM.from_pretrained(checkpoint / "policy", dtype=dtype)
    policy.to(device)
    value_head = ValueHead(policy.config.get_text_config().hidden_size).to(device)
    parameters = [p for p in policy.parameters() if p.requires_grad]
    parameters += list(value_head.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=0.0)
    kl_ctl: ppo_math.AdaptiveKLController | ppo_math.FixedKLController
    if config.adaptive_kl:
        kl_ctl = ppo_math.AdaptiveKLController(
            config.init_kl_coef, config.kl_target, config.kl_horizon
        )
    else:
        kl_ctl = ppo_math.FixedKLController(config.init_kl_coef)
    trainer = _Trainer(
        policy=policy,
        reference=reference,
        value_head=value_head,
        optimizer=optimizer,
        kl_ctl=kl_ctl,
        tokenizer=tokenizer,
        config=config,
    )
    if checkpoint:
        kl_ctl.coef = load_checkpoint(checkpoint, value_head=value_head, optimizer=optimizer)
        log.info("ppo resuming", checkpoint=str(checkpoint), step=read_state(checkpoint)["step"])
    return trainer


class _Trainer:
    """Rollout and update of one PPO step; holds the models between steps."""

    def __init__(
        self,
        *,
        policy: Any,
        reference: Any,
        value_head: ValueHead,
        optimizer: torch.optim.Optimizer,
        kl_ctl: Any,
        tokenizer: Any,
        config: PPOConfig,
    ) -> None:
        self.policy = policy
        self.reference = reference  # None with LoRA: the policy with adapters disabled
        self.value_head = value_head
        self.optimizer = optimizer
        self.kl_ctl = kl_ctl
        self.tokenizer = tokenizer
        self.config = config
        self.device = next(policy.parameters()).device

    def step(self, prompts: list[str], reward_fn: RewardFn) -> dict[str, float]:
        c = self.config
        # ---- rollout
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
        prompt_ids, prompt_mask = encoded["input_ids"], encoded["attention_mask"]  # (B, P)
        P = prompt_ids.shape[1]
        self.policy.eval()  # no dropout, in the rollout or the update
        with torch.no_grad():
            response = self._sample(prompt_ids, prompt_mask)  # (B, R)
            mask = _response_mask(response, self.tokenizer.eos_token_id)  # (B, R)
            input_ids = torch.cat([prompt_ids, response], dim=1)  # (B, P+R)
            attention = torch.cat([prompt_mask, mask.long()], dim=1)  # (B, P+R)
            old_logprobs, old_values, _ = self._forward(input_ids, attention, P, with_value=True)
            ref_logprobs = self._reference_logprobs(input_ids, attention, P)  # (B, R)
        mask = mask.to(old_logprobs.dtype)
        completions = [
            self.tokenizer.decode(row[: int(m.sum())], skip_special_tokens=True)
            for row, m in zip(response.tolist(), mask, strict=True)
        ]
        scores = _scores(reward_fn, prompts, completions, self.device)  # (B,)
        raw_scores = scores
        if c.whiten_rewards and scores.numel() > 1:
            scores = (scores - scores.mean()) / (scores.std() + 1e-8)
        kl = ppo_math.kl_k1(old_logprobs, ref_logprobs) * mask  # (B, R)
        rewards = -self.kl_ctl.coef * kl  # (B, R)
        last = (mask.sum(dim=1).long() - 1).clamp(min=0)  # (B,) index of the last real token
        rewards[torch.arange(rewards.shape[0]), last] += scores
        advantages, returns = ppo_math.gae(rewards, old_values, mask, gamma=c.gamma, lam=c.lam)
        advantages = ppo_math.masked_whiten(advantages, mask)  # (B, R)

        # ---- update (the policy stays in eval mode: with dropout on, the ratio to the
        # rollout's log-probs would not start at 1)
        stats: dict[str, list[float]] = {
            k: []
            for k in (
                "policy_loss",
                "value_loss",
                "clip_fraction",
                "value_clip_fraction",
                "entropy",
            )
        }
        B = input_ids.shape[0]
        for _ in range(c.ppo_epochs):
            order = torch.randperm(B, device=self.device)
            for start in range(0, B, c.mini_batch_size):
                idx = order[start : start + c.mini_batch_size]  # (b,)
                logprobs, values, entropy = self._forward(
                    input_ids[idx], attention[idx], P, with_value=True
                )
                m = mask[idx]  # (b, R)
                pg_loss, clip_fraction = ppo_math.policy_loss(
                    logprobs, old_logprobs[idx], advantages[idx], m, clip_range=c.clip_range
                )
                vf_loss, vf_clip = ppo_math.value_loss(
                    values, old_values[idx], returns[idx], m, clip_range=c.clip_range_value
                )
                loss = (pg_loss + c.vf_coef * vf_loss) / c.gradient_accumulation_steps
                loss.backward()  # type: ignore[no-untyped-call]
                micro = start // c.mini_batch_size + 1
                if micro % c.gradient_accumulation_steps == 0:
                    if c.max_grad_norm > 0:
                        torch.nn.utils.clip_grad_norm_(
                            [p for g in self.optimizer.param_groups for p in g["params"]],
                            c.max_grad_norm,
                        )
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                stats["policy_loss"].append(pg_loss.item())
                stats["value_loss"].append(vf_loss.item())
                stats["clip_fraction"].append(clip_fraction.item())
                stats["value_clip_fraction"].append(vf_clip.item())
                stats["entropy"].append(ppo_math.masked_mean(entropy, m).item())

        mean_kl = float(kl.sum(dim=1).mean())  # nats per completion
        coef = self.kl_ctl.coef
        self.kl_ctl.update(mean_kl, B)
        record = {k: sum(v) / len(v) for k, v in stats.items()}
        return {
            "reward_mean": float(raw_scores.mean()),
            "reward_std": float(raw_scores.std()) if B > 1 else 0.0,
            "kl": mean_kl,
            "kl_coef": coef,
            **record,
            "response_length": float(mask.sum(dim=1).mean()),
        }

    def _sample(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        """Sampled response tokens, padded after the first EOS."""
        from transformers import GenerationConfig

        c = self.config
        generation = GenerationConfig(  # type: ignore[no-untyped-call]
            do_sample=True,
            max_new_tokens=c.max_new_tokens,
            temperature=c.temperature,
            top_k=0,
            top_p=1.0,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        out: torch.Tensor = self.policy.generate(
            input_ids=prompt_ids, attention_mask=prompt_mask, generation_config=generation
        )  # (B, P+R')
        return out[:, prompt_ids.shape[1] :]  # (B, R'), R' <= max_new_tokens

    def _forward(
        self, input_ids: torch.Tensor, attention: torch.Tensor, P: int, *, with_value: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probs of the response tokens, their values and the policy's entropy."""
        head = self.value_head if with_value else None
        return _logprobs(
            self.policy,
            input_ids,
            attention,
            P,
            temperature=self.config.temperature,
            value_head=head,
        )

    def _reference_logprobs(
        self, input_ids: torch.Tensor, attention: torch.Tensor, P: int
    ) -> torch.Tensor:
        t = self.config.temperature
        if self.reference is not None:
            return _logprobs(
                self.reference, input_ids, attention, P, temperature=t, value_head=None
            )[0]
        with self.policy.disable_adapter():  # LoRA: the base model is the reference
            return _logprobs(self.policy, input_ids, attention, P, temperature=t, value_head=None)[
                0
            ]


def _logprobs(
    model: Any,
    input_ids: torch.Tensor,
    attention: torch.Tensor,
    P: int,
    *,
    temperature: float,
    value_head: ValueHead | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # input_ids, attention: (B, P+R); left-padded prompts, so positions come from the mask
    position_ids = (attention.cumsum(dim=-1) - 1).clamp(min=0)  # (B, P+R)
    out = model(
        input_ids=input_ids,
        attention_mask=attention,
        position_ids=position_ids,
        output_hidden_states=value_head is not None,
    )
    logits = out.logits[:, P - 1 : -1].float() / temperature  # (B, R, V): predicts response
    response = input_ids[:, P:]  # (B, R)
    logprobs = ppo_math.logprobs_of(logits, response)  # (B, R)
    if value_head is None:
        empty = torch.zeros(0)
        return logprobs, empty, empty
    hidden = out.hidden_states[-1][:, P - 1 : -1]  # (B, R, H)
    values = value_head(hidden)  # (B, R)
    entropy = ppo_math.entropy_from_logits(logits.detach())  # (B, R)
    return logprobs, values, entropy


def _response_mask(response: torch.Tensor, eos_token_id: int | None) -> torch.Tensor:
    """1 on the response tokens up to and including the first EOS, 0 after it."""
    # response: (B, R)
    if eos_token_id is None:
        return response.new_ones(response.shape, dtype=response.dtype).bool()
    is_eos = (response == eos_token_id).long()  # (B, R)
    after_eos = (is_eos.cumsum(dim=1) - is_eos) > 0  # (B, R)
    return ~after_eos


def _scores(
    reward_fn: RewardFn, prompts: list[str], completions: list[str], device: torch.device
) -> torch.Tensor:
    scores = list(reward_fn(prompts, completions))
    if len(scores) != len(completions):
        raise TrainingDataError(
            f"reward_fn returned {len(scores)} scores for {len(completions)} completions: "
            "return one float per completion, in order"
        )
    return torch.tensor([float(s) for s in scores], dtype=torch.float32, device=device)  # (B,)


class ValueHead(nn.Module):
    """A linear layer from the policy's last hidden state to a scalar value per token."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.summary = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.summary.weight, std=1.0 / (hidden_size + 1))
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # hidden: (B, T, H)
        values: torch.Tensor = self.summary(hidden.float()).squeeze(-1)  # (B, T)
        return values


def _with_lora(policy: Any, config: PPOConfig, checkpoint: Path | None) -> Any:
    try:
        from peft import LoraConfig, PeftModel, get_peft_model
    except ImportError as exc:
        raise TrainingDependencyError(
            "PPOConfig.use_lora=True needs peft (missing): pip install peft, or set use_lora=False"
        ) from exc
    if checkpoint:
        return PeftModel.from_pretrained(policy, checkpoint / "policy", is_trainable=True)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules) if config.lora_target_modules else None,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(policy, lora)
