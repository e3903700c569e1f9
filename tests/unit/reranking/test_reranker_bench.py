"""The benchmark's pure parts: its workload, percentiles and the verdict on the target."""

from __future__ import annotations

from codejury.reranking.bench import (
    IN_PROCESS,
    KSERVE_GRPC,
    Row,
    percentile,
    verdicts,
    workload,
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
