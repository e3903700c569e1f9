"""The arithmetic of PPO, as pure functions on tensors (no model, no optimiser).

Shapes: ``B`` sequences (one per sampled completion), ``T`` response tokens per
sequence (right-padded), ``V`` the vocabulary. ``mask`` is 1.0 on real response tokens
and 0.0 on padding; every reduction here ignores the masked positions.

- ``masked_mean`` / ``masked_var`` / ``masked_whiten``: statistics over the real tokens;
  whitening normalises the advantages (and, by a setting, the rewards) per batch.
- ``gae``: generalized advantage estimation (Schulman et al. 2016), run backwards over
  the response, ``delta_t = r_t + gamma * V_{t+1} - V_t`` and
  ``A_t = delta_t + gamma * lambda * A_{t+1}``; values past the last real token are 0.
- ``policy_loss``: the clipped surrogate ``max(-A * ratio, -A * clip(ratio, 1-eps, 1+eps))``
  and the fraction of tokens where the clipped branch was taken.
- ``value_loss``: the clipped value loss ``0.5 * max((V - R)^2, (clip(V) - R)^2)``.
- ``kl_k1`` / ``kl_k3``: per-token estimates of KL(policy || reference) from log-probs of
  the sampled tokens (Schulman, "Approximating KL divergence", 2020).
- ``entropy_from_logits``: the policy's entropy at each position.
- ``AdaptiveKLController`` (Ziegler et al. 2019) and ``FixedKLController``: the KL
  penalty's coefficient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the positions where ``mask`` is 1 (a scalar)."""
    # values, mask: (B, T)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def masked_var(values: torch.Tensor, mask: torch.Tensor, *, unbiased: bool = True) -> torch.Tensor:
    """Variance over the masked positions; ``unbiased`` applies Bessel's correction."""
    # values, mask: (B, T)
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        if n > 1:
            var = var * n / (n - 1)
    return var


def masked_whiten(
    values: torch.Tensor, mask: torch.Tensor, *, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """``(values - mean) / std`` over the masked positions; masked positions come out 0.

    With ``shift_mean=False`` the mean is added back (only the scale is normalised), as
    for rewards, whose sign carries meaning.
    """
    # values, mask: (B, T)
    mean = masked_mean(values, mask)
    var = masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask  # (B, T)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    *,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns by GAE over a right-padded response.

    Masked positions contribute nothing: their reward and value count as 0, so the
    value after the last real token is 0 (the episode ends there). Returns
    ``(advantages, returns)``, both (B, T), 0 at masked positions;
    ``returns = advantages + values``, the value head's regression target.
    """
    # rewards, values, mask: (B, T)
    rewards = rewards * mask
    values = values * mask
    B, T = rewards.shape
    advantages = torch.zeros_like(rewards)  # (B, T)
    next_advantage = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)  # (B,)
    next_value = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)  # (B,)
    for t in reversed(range(T)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,)
        advantage = delta + gamma * lam * next_advantage  # (B,)
        advantage = advantage * mask[:, t]  # a padded position passes nothing back
        advantages[:, t] = advantage
        next_advantage = advantage
        next_value = values[:, t]
    returns = (advantages + values) * mask  # (B, T)
    return advantages, returns


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_range: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate (to minimise) and the fraction of tokens it clipped."""
    # logprobs, old_logprobs, advantages, mask: (B, T)
    ratio = torch.exp(logprobs - old_logprobs)  # (B, T)
    unclipped = -advantages * ratio  # (B, T)
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)  # (B, T)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped > unclipped).to(logprobs.dtype), mask)
    return loss, clip_fraction


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_range: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss ``0.5 * max((V - R)^2, (V_clip - R)^2)`` and its clip fraction.

    ``V_clip = old_V + clip(V - old_V, -clip_range, clip_range)``: the value may not move
    further than ``clip_range`` from the value at sampling time in one update.
    """
    # values, old_values, returns, mask: (B, T)
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    unclipped_error = (values - returns) ** 2  # (B, T)
    clipped_error = (clipped_values - returns) ** 2  # (B, T)
    loss = 0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask)
    clip_fraction = masked_mean((clipped_error > unclipped_error).to(values.dtype), mask)
    return loss, clip_fraction


def kl_k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token ``log p - log p_ref`` of the sampled tokens: unbiased, can be negative."""
    # logprobs, ref_logprobs: (B, T)
    return logprobs - ref_logprobs  # (B, T)


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token ``exp(r) - 1 - r`` with ``r = log p_ref - log p``: unbiased and >= 0."""
    # logprobs, ref_logprobs: (B, T)
    r = ref_logprobs - logprobs  # (B, T)
    return torch.expm1(r) - r  # (B, T)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution at each position, in nats."""
    # logits: (B, T, V)
    logp = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    return -(logp.exp() * logp).sum(dim=-1)  # (B, T)


def logprobs_of(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probability of each chosen token under ``logits``."""
    # logits: (B, T, V), tokens: (B, T)
    logp = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    return torch.gather(logp, 2, tokens.unsqueeze(-1)).squeeze(-1)  # (B, T)


@dataclass
class AdaptiveKLController:
    """The KL coefficient of Ziegler et al. (2019), steered towards a target KL.

    After each step: ``coef *= 1 + clip(KL / target - 1, -0.2, 0.2) * n_steps / horizon``,
    so the penalty grows while the measured KL is above the target and shrinks below it.
    """

    coef: float
    target: float
    horizon: int

    def update(self, kl: float, n_steps: int) -> None:
        proportional_error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.coef *= 1.0 + proportional_error * n_steps / self.horizon


@dataclass
class FixedKLController:
    """A constant KL coefficient."""

    coef: float

    def update(self, kl: float, n_steps: int) -> None:
        del kl, n_steps  # constant by definition
