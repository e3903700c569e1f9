"""Canary analysis: the Beta-posterior non-inferiority rule, its guards, and waiting."""

from __future__ import annotations

import math

import pytest
from codejury.control.canary import Verdict, analyse, beta_cdf, prob_not_worse
from codejury.control.spec import CanaryPolicy

from tests.unit.control.control_cases import arm

POLICY = CanaryPolicy(
    min_samples=100, margin=0.05, confidence=0.9, max_error_rate=0.05, max_p99_latency_ms=2000.0
)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _exact_p_canary_above_stable(stable: tuple[int, int], canary: tuple[int, int]) -> float:
    """P(p_canary > p_stable) in closed form for integer Beta parameters (margin 0):
    sum over i < a_c of B(a_s + i, b_s + b_c) / ((b_c + i) B(1 + i, b_c) B(a_s, b_s))."""
    a_s, b_s = 1 + stable[0], 1 + stable[1] - stable[0]
    a_c, b_c = 1 + canary[0], 1 + canary[1] - canary[0]
    return math.fsum(
        math.exp(
            _log_beta(a_s + i, b_s + b_c)
            - math.log(b_c + i)
            - _log_beta(1 + i, b_c)
            - _log_beta(a_s, b_s)
        )
        for i in range(a_c)
    )


@pytest.mark.parametrize(
    ("stable", "canary"),
    [
        ((5, 10), (5, 10)),
        ((3, 10), (7, 12)),
        ((0, 20), (1, 5)),
        ((45, 60), (30, 50)),
        ((9, 9), (0, 4)),
    ],
)
def test_probability_matches_the_closed_form_at_margin_zero(
    stable: tuple[int, int], canary: tuple[int, int]
) -> None:
    got = prob_not_worse(stable[0], stable[1], canary[0], canary[1], 0.0)
    assert got == pytest.approx(_exact_p_canary_above_stable(stable, canary), abs=1e-7)


def test_probability_matches_scipy_with_a_margin() -> None:
    stats = pytest.importorskip("scipy.stats")
    integrate = pytest.importorskip("scipy.integrate")
    for xs, ns, xc, nc, margin in [
        (500, 1000, 470, 1000, 0.05),
        (80, 900, 3, 40, 0.02),
        (999, 1000, 95, 100, 0.1),
    ]:
        s, c = stats.beta(1 + xs, 1 + ns - xs), stats.beta(1 + xc, 1 + nc - xc)
        expected = integrate.quad(
            lambda y, s=s, c=c, m=margin: s.pdf(y) * c.sf(y - m), 0, 1, points=[s.mean()], limit=500
        )[0]
        assert prob_not_worse(xs, ns, xc, nc, margin) == pytest.approx(expected, abs=1e-8)


def test_equal_counts_without_a_margin_are_a_coin_flip() -> None:
    assert prob_not_worse(300, 1000, 300, 1000, 0.0) == pytest.approx(0.5, abs=1e-9)
    assert prob_not_worse(300, 1000, 300, 1000, 0.05) > 0.99


@pytest.mark.parametrize(
    ("x", "a", "b", "expected"),
    [
        (0.3, 1, 1, 0.3),
        (0.3, 4, 1, 0.3**4),
        (0.3, 1, 6, 1 - 0.7**6),
        (0.0, 2, 3, 0.0),
        (1.0, 2, 3, 1.0),
    ],
)
def test_beta_cdf_closed_forms(x: float, a: float, b: float, expected: float) -> None:
    assert beta_cdf(x, a, b) == pytest.approx(expected, abs=1e-12)


def test_zero_traffic_waits() -> None:
    decision = analyse(POLICY, arm(0, 0), arm(0, 0))
    assert decision.verdict is Verdict.WAIT
    assert decision.reason == (
        "canary has 0 of 100 labelled requests; stable has 0 of 100 labelled requests"
    )
    assert decision.probability is None


def test_a_short_canary_waits_even_when_it_looks_perfect() -> None:
    decision = analyse(POLICY, arm(500, 250), arm(12, 12))
    assert decision.verdict is Verdict.WAIT
    assert decision.reason == "canary has 12 of 100 labelled requests"


def test_a_short_stable_arm_waits() -> None:
    decision = analyse(POLICY, arm(99, 50), arm(400, 200))
    assert (decision.verdict, decision.reason) == (
        Verdict.WAIT,
        "stable has 99 of 100 labelled requests",
    )


def test_a_clearly_better_canary_passes() -> None:
    decision = analyse(POLICY, arm(400, 200), arm(100, 70))
    assert decision.verdict is Verdict.PASS
    assert decision.probability is not None and decision.probability > 0.999


def test_a_clearly_worse_canary_fails_with_the_measured_rates() -> None:
    decision = analyse(POLICY, arm(400, 240), arm(100, 30))
    assert decision.verdict is Verdict.FAIL
    assert "canary pass rate 0.300 (30/100)" in decision.reason
    assert "stable 0.600 (240/400)" in decision.reason
    assert decision.reason.endswith("< 0.9")


# Stable 500/1000; P(p_canary >= p_stable - 0.05) is 0.8956 at 478/1000, 0.9034 at 479/1000
# (checked against scipy above), either side of the confidence 0.9.
@pytest.mark.parametrize(("canary_passed", "verdict"), [(478, Verdict.FAIL), (479, Verdict.PASS)])
def test_borderline_counts_either_side_of_the_confidence(
    canary_passed: int, verdict: Verdict
) -> None:
    policy = CanaryPolicy(min_samples=1000, margin=0.05, confidence=0.9)
    assert analyse(policy, arm(1000, 500), arm(1000, canary_passed)).verdict is verdict


@pytest.mark.parametrize(
    ("confidence", "verdict"), [(0.90342, Verdict.PASS), (0.90343, Verdict.FAIL)]
)
def test_the_confidence_threshold_itself_is_sharp(confidence: float, verdict: Verdict) -> None:
    policy = CanaryPolicy(min_samples=1000, margin=0.05, confidence=confidence)
    decision = analyse(policy, arm(1000, 500), arm(1000, 479))
    assert decision.probability == pytest.approx(0.903425, abs=1e-6)
    assert decision.verdict is verdict


def test_the_margin_decides_non_inferiority() -> None:
    # A canary 3 points below stable: within a 5-point margin, not within a 1-point one.
    stable, canary = arm(2000, 1200), arm(2000, 1140)
    assert analyse(POLICY, stable, canary).verdict is Verdict.PASS
    strict = CanaryPolicy(min_samples=100, margin=0.01, confidence=0.9)
    assert analyse(strict, stable, canary).verdict is Verdict.FAIL


def test_an_error_rate_above_the_guard_fails_even_with_better_passes() -> None:
    decision = analyse(POLICY, arm(400, 200), arm(100, 90, errors=7, extra=0))
    assert decision.verdict is Verdict.FAIL
    assert decision.reason == (
        "canary error rate 0.070 (7 of 100 requests) is above maxErrorRate 0.05"
    )


def test_an_error_rate_at_the_guard_does_not_fail() -> None:
    assert analyse(POLICY, arm(400, 200), arm(100, 90, errors=5)).verdict is Verdict.PASS


def test_a_p99_latency_above_the_guard_fails() -> None:
    decision = analyse(POLICY, arm(400, 200), arm(100, 90, p99=2500.0))
    assert decision.verdict is Verdict.FAIL
    assert "canary p99 latency 2500 ms is above maxP99LatencyMilliseconds 2000" in decision.reason


def test_no_latency_measured_skips_the_latency_guard() -> None:
    assert analyse(POLICY, arm(400, 200), arm(100, 90, p99=None)).verdict is Verdict.PASS


def test_guards_wait_for_min_samples_requests() -> None:
    # Every one of 20 requests errored and took 9 s: still too few to judge.
    decision = analyse(POLICY, arm(400, 200), arm(10, 0, errors=20, p99=9000.0, extra=10))
    assert decision.verdict is Verdict.WAIT
    # Unlabelled requests count for the guards: 100 requests with 10 errors fail the canary
    # although only 20 of them carried tests.
    decision = analyse(POLICY, arm(400, 200), arm(20, 20, errors=10, extra=80))
    assert decision.verdict is Verdict.FAIL
    assert "10 of 100 requests" in decision.reason
