"""Canary analysis: compare the canary's pass rate with stable's at one traffic step.

The rule, with the policy's ``min_samples`` (n), ``margin`` (m) and ``confidence`` (c):

1. Wait until the canary has served n requests. Then the guards: the canary fails when
   its error rate (errors / requests) is above ``max_error_rate``, or its p99 latency is
   above ``max_p99_latency_ms``.
2. Wait until each arm has n labelled requests (requests that carried tests). Too little
   traffic never decides anything.
3. Test, once, for non-inferiority. With ``x`` passes of ``k`` labelled requests per arm
   and a uniform prior, each arm's pass rate has the posterior Beta(1 + x, 1 + k - x),
   the two independent. The canary passes when

       P(p_canary >= p_stable - m) >= c

   and fails otherwise. The probability is computed deterministically (no sampling):

       P = integral over t of f(t) * G(t)

   over the narrower posterior's density f (Simpson's rule on 400 intervals within 20
   standard deviations of its mean, normalised by the integral of f alone), where G is
   the other posterior's CDF evaluated at t + m or t - m (the regularised incomplete beta
   function, by its continued fraction). The narrower density is the one integrated so
   that G is smooth across the grid; the error is far below the third decimal.

Why this rule: a reranker canary has to show it is not worse, not that it is better
(self-training iterations make small steps), so the question is non-inferiority within a
margin. The Beta posterior stays sensible at pass rates of 0 or 1 and at small counts,
where a Wald z-test's standard error collapses. The decision is taken at the first look
where both arms have n labelled requests, and the step's counts then restart, so the
confidence is not spent on repeated looks at the same data. Choosing n: with equal true
pass rates p, the canary passes with probability about Phi(m / s - z_c) where
s = sqrt(2 p (1 - p) / n); the defaults (n = 1000, m = 0.05, c = 0.9) give about 83% at
p = 0.5 and more elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from codejury.control.observations import ArmStats
from codejury.control.spec import CanaryPolicy

_INTERVALS = 400  # Simpson intervals; even
_WIDTH_SD = 20.0  # half-width of the integration window, in standard deviations
_CF_MAX_TERMS = 10_000
_CF_EPS = 1e-15
_TINY = 1e-300


class Verdict(StrEnum):
    WAIT = "Wait"  # not enough traffic yet: decide nothing
    PASS = "Pass"  # noqa: S105 (a verdict, not a password): the canary may take the next step
    FAIL = "Fail"  # roll the canary back


@dataclass(frozen=True)
class CanaryDecision:
    """A verdict and why; ``probability`` is P(p_canary >= p_stable - margin) when the
    pass rates were compared."""

    verdict: Verdict
    reason: str
    probability: float | None = None


def analyse(policy: CanaryPolicy, stable: ArmStats, canary: ArmStats) -> CanaryDecision:
    """The verdict at one step, from each arm's traffic since the step started."""
    n = policy.min_samples
    if canary.requests >= n:
        if canary.error_rate > policy.max_error_rate:
            return CanaryDecision(
                Verdict.FAIL,
                f"canary error rate {canary.error_rate:.3f} ({canary.errors} of "
                f"{canary.requests} requests) is above maxErrorRate {policy.max_error_rate}",
            )
        p99 = canary.p99_latency_ms
        if p99 is not None and p99 > policy.max_p99_latency_ms:
            return CanaryDecision(
                Verdict.FAIL,
                f"canary p99 latency {p99:.0f} ms is above maxP99LatencyMilliseconds "
                f"{policy.max_p99_latency_ms:.0f} (canary error rate {canary.error_rate:.3f})",
            )
    short = [
        f"{name} has {arm.labelled} of {n} labelled requests"
        for name, arm in (("canary", canary), ("stable", stable))
        if arm.labelled < n
    ]
    if short:
        return CanaryDecision(Verdict.WAIT, "; ".join(short))
    p = prob_not_worse(
        stable.passed, stable.labelled, canary.passed, canary.labelled, policy.margin
    )
    measured = (
        f"canary pass rate {canary.pass_rate:.3f} ({canary.passed}/{canary.labelled}), "
        f"stable {stable.pass_rate:.3f} ({stable.passed}/{stable.labelled}), canary error "
        f"rate {canary.error_rate:.3f}: P(p_canary >= p_stable - {policy.margin}) = {p:.4f}"
    )
    if p >= policy.confidence:
        return CanaryDecision(Verdict.PASS, f"{measured} >= {policy.confidence}", p)
    return CanaryDecision(Verdict.FAIL, f"{measured} < {policy.confidence}", p)


def prob_not_worse(
    stable_passed: int, stable_n: int, canary_passed: int, canary_n: int, margin: float
) -> float:
    """P(p_canary >= p_stable - margin) for independent Beta(1 + passed, 1 + failed)
    posteriors of the two pass rates."""
    a_s, b_s = 1.0 + stable_passed, 1.0 + stable_n - stable_passed
    a_c, b_c = 1.0 + canary_passed, 1.0 + canary_n - canary_passed
    if _sd(a_c, b_c) <= _sd(a_s, b_s):
        # integrate over p_canary = t: P(p_stable <= t + margin)
        return _expectation(a_c, b_c, lambda t: beta_cdf(t + margin, a_s, b_s))
    # integrate over p_stable = t: P(p_canary >= t - margin)
    return _expectation(a_s, b_s, lambda t: 1.0 - beta_cdf(t - margin, a_c, b_c))


def beta_cdf(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (Numerical Recipes, 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b), by the modified Lentz method."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _CF_MAX_TERMS + 1):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + aa / c
            c = c if abs(c) > _TINY else _TINY
            delta = d * c
            h *= delta
        if abs(delta - 1.0) < _CF_EPS:
            break
    return h


def _sd(a: float, b: float) -> float:
    return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))


def _beta_pdf(x: float, a: float, b: float) -> float:
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    if x <= 0.0:
        return math.exp(log_norm) if a == 1.0 else 0.0
    if x >= 1.0:
        return math.exp(log_norm) if b == 1.0 else 0.0
    return math.exp(log_norm + (a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x))


def _expectation(a: float, b: float, g: Callable[[float], float]) -> float:
    """E[g(T)] for T ~ Beta(a, b), by Simpson's rule over the window where T has its mass."""
    mean = a / (a + b)
    spread = _WIDTH_SD * _sd(a, b)
    low, high = max(0.0, mean - spread), min(1.0, mean + spread)
    step = (high - low) / _INTERVALS
    weighted = total = 0.0
    for i in range(_INTERVALS + 1):
        t = low + i * step
        w = 1.0 if i in (0, _INTERVALS) else (4.0 if i % 2 else 2.0)
        density = w * _beta_pdf(t, a, b)
        total += density
        weighted += density * g(t)
    return min(1.0, max(0.0, weighted / total))
