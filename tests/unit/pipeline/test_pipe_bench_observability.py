"""The arithmetic of ``codejury bench pipeline --observability``: rounds of each mode
merged, the cost as the share of throughput lost, and the noise a cost must beat."""

from __future__ import annotations

import pytest
from codejury.pipeline.bench import OFF, ON, LoadRun, ObservabilityRun


def round_of(mode: str, requests: int, seconds: float) -> LoadRun:
    return LoadRun(mode, 4, requests, seconds, (seconds / requests,) * requests)


def test_rounds_merge_by_mode_and_the_cost_is_the_throughput_lost() -> None:
    run = ObservabilityRun(
        4,
        (
            round_of(OFF, 10, 10.0),  # 1.0/s
            round_of(ON, 10, 10.5),
            round_of(ON, 10, 10.5),
            round_of(OFF, 10, 10.0),
        ),
    )
    assert run.of(OFF).requests == 20 and run.of(OFF).seconds == 20.0
    assert len(run.of(ON).latencies_s) == 20
    assert run.throughput_ratio == pytest.approx(10 / 10.5)
    assert run.cost == pytest.approx(1 - 10 / 10.5)  # 4.8%: over the 3% target
    assert run.spread == 0.0  # identical rounds: no noise


def test_the_spread_is_the_widest_gap_between_rounds_of_one_mode() -> None:
    run = ObservabilityRun(
        1,
        (round_of(OFF, 10, 10.0), round_of(ON, 10, 10.0), round_of(ON, 10, 10.0)),
    )
    assert run.cost == pytest.approx(0.0)
    noisy = ObservabilityRun(1, (round_of(OFF, 12, 10.0), round_of(OFF, 8, 10.0), *run.rounds[1:]))
    assert noisy.spread == pytest.approx(0.4)  # 1.2/s and 0.8/s around 1.0/s
