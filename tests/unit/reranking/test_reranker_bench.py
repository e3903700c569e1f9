"""The benchmark's pure parts: its workload, percentiles and the verdict on the target."""

from __future__ import annotations

import pytest
from codejury.core.errors import ConfigurationError
from codejury.reranking.bench import (
    IN_PROCESS,
    KSERVE_GRPC,
    PROMPT,
    Row,
    agreement,
    parse_variant,
    percentile,
    verdicts,
    workload,
    workload_problems,
)


def test_workload_is_deterministic_and_distinct() -> None:
    candidates = workload(0, 64)
    assert candidates == workload(0, 64)
    assert len(set(candidates)) == 64
    assert all(c.endswith("    return pairs\n") for c in candidates)


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (
        50.0,
        99.0,
        100.0,
    )
    assert percentile([3.0], 0.99) == 3.0


def _row(mode: str, ratio: float) -> Row:
    return Row(32, mode, 10, 1.0, 100.0 * ratio, 120.0, ratio)


def test_the_verdict_judges_grpc_at_batch_32_against_20_percent() -> None:
    assert verdicts([_row(IN_PROCESS, 1.0), _row(KSERVE_GRPC, 1.15)]) == (
        "KServe gRPC adds +15.0% p50 latency over in process at batch 32 (target <= 20%): met",
    )
    (line,) = verdicts([_row(KSERVE_GRPC, 1.3)])
    assert line.endswith("MISSED")


def test_agreement_counts_picks_problem_by_problem() -> None:
    baseline = [[0.1, 0.9, 0.2], [0.3, 0.8, 0.7]]
    variant = [[0.1, 0.9, 0.2], [0.3, 0.7, 0.8]]  # the second problem's pick moved
    result = agreement("onnx-int8@8", "x", list(zip(baseline, variant, strict=True)))
    assert (result.problems, result.same_picks, result.candidates) == (2, 1, 6)
    assert result.max_abs_diff == pytest.approx(0.1)
    assert result.score_range == pytest.approx(0.8)


def test_the_workload_splits_into_problems_of_eight() -> None:
    problems = workload_problems(workload(0, 20))
    assert [len(p.candidates) for p in problems] == [8, 8, 4]
    assert {p.prompt for p in problems} == {PROMPT}


def test_the_verdict_judges_a_variant_against_three_times_the_baseline() -> None:
    fast = Row(32, "in-process onnx-int8@8", 10, 3.0, 30.0, 40.0, 0.33, speedup=3.2)
    slow = Row(32, "in-process onnx-fp32@8", 10, 1.0, 90.0, 99.0, 0.9, speedup=1.1)
    assert verdicts([fast, slow]) == (
        "onnx-int8@8 scores 3.20x the baseline's candidates/s in process at batch 32 (target "
        ">= 3x): met",
        "onnx-fp32@8 scores 1.10x the baseline's candidates/s in process at batch 32 (target "
        ">= 3x): MISSED",
    )


def test_variants_name_a_runtime_and_a_model_batch() -> None:
    assert parse_variant("onnx-int8@8") == ("onnx-int8", 8)
    for bad in ("onnx@8", "torch", "torch@0", "torch@x"):
        with pytest.raises(ConfigurationError, match="RUNTIME@MODEL_BATCH"):
            parse_variant(bad)
