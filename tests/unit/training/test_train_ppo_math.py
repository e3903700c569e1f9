"""PPO arithmetic against values worked out by hand (the working is in the comments)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from codejury.training.ppo_math import (  # noqa: E402
    AdaptiveKLController,
    FixedKLController,
    entropy_from_logits,
    gae,
    kl_k1,
    kl_k3,
    logprobs_of,
    masked_mean,
    masked_var,
    masked_whiten,
    policy_loss,
    value_loss,
)


def t(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_masked_mean_ignores_masked_positions() -> None:
    assert masked_mean(t([1, 2, 3, 100]), t([1, 1, 1, 0])).item() == pytest.approx(2.0)


def test_masked_whiten_of_1_2_3() -> None:
    values, mask = t([1, 2, 3, 100]), t([1, 1, 1, 0])
    # mean 2; unbiased variance ((1-2)^2 + 0 + (3-2)^2) / (3-1) = 1; biased 2/3
    assert masked_var(values, mask).item() == pytest.approx(1.0)
    assert masked_var(values, mask, unbiased=False).item() == pytest.approx(2 / 3)
    assert masked_whiten(values, mask)[0].tolist() == pytest.approx([-1, 0, 1, 0], abs=1e-6)
    # shift_mean=False keeps the mean: [-1, 0, 1] + 2
    assert masked_whiten(values, mask, shift_mean=False)[0].tolist() == pytest.approx(
        [1, 2, 3, 0], abs=1e-6
    )


def test_gae_on_a_3_step_trajectory_with_a_padded_position() -> None:
    rewards = t([0, 0, 1, 5])  # the 5 and the 9 sit on a masked position: ignored
    values = t([0.5, 0.6, 0.7, 9])
    mask = t([1, 1, 1, 0])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.95)
    # t=2: delta = 1 + 0.9*0 - 0.7 = 0.3                         A2 = 0.3
    # t=1: delta = 0 + 0.9*0.7 - 0.6 = 0.03   A1 = 0.03 + 0.855*0.3    = 0.2865
    # t=0: delta = 0 + 0.9*0.6 - 0.5 = 0.04   A0 = 0.04 + 0.855*0.2865 = 0.2849575
    assert advantages[0].tolist() == pytest.approx([0.2849575, 0.2865, 0.3, 0.0])
    # returns = A + V on real positions
    assert returns[0].tolist() == pytest.approx([0.7849575, 0.8865, 1.0, 0.0])


def test_gae_with_lambda_1_and_gamma_1_is_return_minus_value() -> None:
    advantages, _ = gae(t([1, 2, 3]), t([0, 0, 0]), t([1, 1, 1]), gamma=1.0, lam=1.0)
    assert advantages[0].tolist() == pytest.approx([6, 5, 3])


def test_clipped_surrogate_on_the_four_cases() -> None:
    ratios = t([1.5, 1.5, 0.5, 0.5])
    advantages = t([1, -1, 1, -1])
    mask = t([1, 1, 1, 1])
    loss, clip_fraction = policy_loss(
        torch.log(ratios), torch.zeros_like(ratios), advantages, mask, clip_range=0.2
    )
    # per token max(-A*r, -A*clip(r, 0.8, 1.2)):
    #   r=1.5, A=+1: max(-1.5, -1.2) = -1.2  (clipped: no gain past 1+eps)
    #   r=1.5, A=-1: max( 1.5,  1.2) =  1.5
    #   r=0.5, A=+1: max(-0.5, -0.8) = -0.5
    #   r=0.5, A=-1: max( 0.5,  0.8) =  0.8  (clipped)
    assert loss.item() == pytest.approx((-1.2 + 1.5 - 0.5 + 0.8) / 4)  # 0.15
    assert clip_fraction.item() == pytest.approx(0.5)


def test_clipped_surrogate_ignores_masked_tokens() -> None:
    loss, clip_fraction = policy_loss(
        torch.log(t([1.5, 3.0])), t([0, 0]), t([1, 1]), t([1, 0]), clip_range=0.2
    )
    assert loss.item() == pytest.approx(-1.2)
    assert clip_fraction.item() == pytest.approx(1.0)


def test_value_clipping() -> None:
    old = t([1.0, 1.0, 1.0])
    new = t([1.5, 1.1, 0.5])
    returns = t([2.0, 0.0, 0.0])
    loss, clip_fraction = value_loss(new, old, returns, t([1, 1, 1]), clip_range=0.2)
    # 1.5 -> clipped to 1.2: max((1.5-2)^2, (1.2-2)^2) = max(0.25, 0.64) = 0.64 (clipped)
    # 1.1 inside the range:  max(1.21, 1.21)                              = 1.21
    # 0.5 -> clipped to 0.8: max((0.5-0)^2, (0.8-0)^2) = max(0.25, 0.64) = 0.64 (clipped)
    assert loss.item() == pytest.approx(0.5 * (0.64 + 1.21 + 0.64) / 3)  # 0.415
    assert clip_fraction.item() == pytest.approx(2 / 3)


def test_kl_estimates_on_simple_numbers() -> None:
    logp = torch.log(t([0.5, 0.3]))
    ref = torch.log(t([0.25, 0.3]))
    # k1 = log 0.5 - log 0.25 = log 2; equal probabilities give 0
    assert kl_k1(logp, ref)[0].tolist() == pytest.approx([math.log(2), 0.0])
    # k3: r = log 0.25 - log 0.5 = -log 2; exp(r) - 1 - r = 0.5 - 1 + log 2 = 0.19315
    assert kl_k3(logp, ref)[0].tolist() == pytest.approx([0.5 - 1 + math.log(2), 0.0])
    # k3 is never negative, even where k1 is
    assert kl_k1(ref, logp)[0, 0].item() < 0 < kl_k3(ref, logp)[0, 0].item()


def test_entropy_and_logprobs_from_logits() -> None:
    logits = torch.zeros(1, 2, 4, dtype=torch.float64)  # (B, T, V): uniform over 4
    logits[0, 1] = torch.tensor([0.0, -1e9, -1e9, -1e9])  # certain: entropy 0
    assert entropy_from_logits(logits)[0].tolist() == pytest.approx([math.log(4), 0.0])
    tokens = torch.tensor([[2, 0]])
    assert logprobs_of(logits, tokens)[0].tolist() == pytest.approx([math.log(0.25), 0.0])


def test_adaptive_controller_moves_towards_the_target() -> None:
    up = AdaptiveKLController(coef=0.1, target=6.0, horizon=10000)
    up.update(kl=12.0, n_steps=100)  # error 1.0 clipped to 0.2: 0.1 * (1 + 0.2*100/10000)
    assert up.coef == pytest.approx(0.1002)
    down = AdaptiveKLController(coef=0.1, target=6.0, horizon=10000)
    down.update(kl=3.0, n_steps=100)  # error -0.5 clipped to -0.2
    assert down.coef == pytest.approx(0.0998)
    small = AdaptiveKLController(coef=0.1, target=6.0, horizon=10000)
    small.update(kl=6.6, n_steps=100)  # error 0.1, unclipped: 0.1 * 1.001
    assert small.coef == pytest.approx(0.1001)


def test_fixed_controller_stays_put() -> None:
    fixed = FixedKLController(coef=0.1)
    fixed.update(kl=100.0, n_steps=100)
    assert fixed.coef == 0.1
