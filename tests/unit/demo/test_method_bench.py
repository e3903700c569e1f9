"""``bench method``'s bookkeeping: the sampling record, the ledger, rows and rescoring."""

from __future__ import annotations

from pathlib import Path

import pytest
from codejury.core.errors import ConfigurationError
from codejury.core.settings import Settings
from codejury.demo.method import (
    CPU_SIZE,
    IterationRecord,
    Ledger,
    bench_settings,
    check_sampling,
    iteration_ranker,
    table_spec,
    with_scores,
)
from codejury.evaluation.metrics import CandidateOutcome, ProblemOutcome


def test_sampling_record_is_written_then_enforced(tmp_path: Path) -> None:
    check_sampling(tmp_path, {"n": 8, "seed": 1234})
    check_sampling(tmp_path, {"n": 8, "seed": 1234})  # the same: resumes
    with pytest.raises(ConfigurationError, match=r"n 8 -> 16.*move .* away"):
        check_sampling(tmp_path, {"n": 16, "seed": 1234})


def test_ledger_survives_a_restart(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.json")
    entry = IterationRecord(0, "rm-i0-x", "v0", "snap-1", 61.5, 0.4)
    ledger.record(entry)
    ledger.add_time("sampling", 10.0)
    ledger.add_time("sampling", 5.0)  # summed over runs
    again = Ledger(tmp_path / "ledger.json")
    assert again.iterations == {0: entry}
    assert again.phases == {"sampling": 15.0}


def test_rows_and_comparisons_of_two_iterations() -> None:
    rows, comparisons = table_spec(2, greedy=True)
    assert [r.name for r in rows] == [
        "greedy",
        "random",
        "logprob",
        iteration_ranker(0),
        iteration_ranker(1),
        iteration_ranker(2),
        "oracle",
    ]
    assert comparisons[:2] == [
        (iteration_ranker(1), iteration_ranker(0)),
        (iteration_ranker(2), iteration_ranker(1)),
    ]
    assert (iteration_ranker(0), "logprob") in comparisons
    assert (iteration_ranker(2), "random") in comparisons
    assert "greedy" not in [r.name for r in table_spec(0, greedy=False)[0]]


def test_with_scores_adds_a_ranker_and_keeps_the_rest() -> None:
    outcome = ProblemOutcome(
        "p", "python", (CandidateOutcome(True, {"logprob": -1.0}, "a"),), greedy_passed=None
    )
    [scored] = with_scores([outcome], "rm", [[0.5]])
    assert scored.candidates[0].scores == {"logprob": -1.0, "rm": 0.5}
    assert scored.candidates[0].completion == "a"


def test_bench_settings_keep_the_bench_apart(tmp_path: Path) -> None:
    base = Settings(run_dir=tmp_path)
    settings = bench_settings(
        base, training_languages=["python", "cpp"], size=CPU_SIZE, max_new_tokens=160
    )
    assert settings.run_dir == tmp_path.resolve() / "bench" / "method"
    assert settings.reranking.registry_uri is None  # the bench's own registry
    assert settings.training.store_dir is None
    assert settings.generation.cache_dir == tmp_path.resolve() / "cache" / "generation"
    assert settings.training.languages == "python,cpp"
    assert settings.training.ppo_steps == CPU_SIZE.ppo_steps
