"""Cold-start mining through the real sandbox: only failing mutants are kept as negatives."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from codejury.execution.executor import Executor
from codejury.training.coldstart import mbxp_problems, mine_mutants, mutation_limits
from codejury.training.records import Source
from codejury.training.store import TrainingStore


# C++ is the slow lane (14 s: a compile per mutant); Python keeps the rule in the default lane.
@pytest.mark.parametrize("language", ["python", pytest.param("cpp", marks=pytest.mark.slow)])
def test_three_mbxp_problems_keep_only_failing_mutants(
    language: str, data_dir: Path, training_executor: Executor, tmp_path: Path
) -> None:
    problems = mbxp_problems(data_dir, language, 3)
    assert len(problems) == 3
    store = TrainingStore(tmp_path / "store")
    limits = mutation_limits(training_executor.config.default_limits, 5.0)
    started = time.monotonic()
    report = mine_mutants(problems, training_executor, store, per_problem=6, seed=0, limits=limits)
    elapsed = time.monotonic() - started

    assert report.problems == 3 and report.canonical_passed == 3, report
    assert report.mutants >= 12
    assert report.kept + report.survived + report.sandbox_errors == report.mutants
    assert report.sandbox_errors == 0
    assert report.kept >= report.mutants // 2, report
    rows = store.rows()
    canonical = [r for r in rows if r.source is Source.CANONICAL]
    mutants = [r for r in rows if r.source is Source.MUTATION]
    assert len(canonical) == 3 and all(r.passed for r in canonical)
    assert len(mutants) == report.kept
    assert all(not r.passed and r.status != "SANDBOX_ERROR" for r in mutants)
    assert {r.problem_id for r in rows} == {p.problem.problem_id for p in problems}
    by_problem = {p.problem.problem_id: p for p in problems}
    for r in rows:
        assert r.prompt == by_problem[r.problem_id].problem.prompt and r.dataset == "mbxp"
        if r.source is Source.MUTATION:
            assert r.program != by_problem[r.problem_id].canonical_solution
    print(f"{language}: {report} in {elapsed:.1f}s")  # reported with -s

    # Re-running the same job stores nothing new once snapshotted (same rows, same keys).
    first = store.snapshot().snapshot_id
    mine_mutants(problems, training_executor, store, per_problem=6, seed=0, limits=limits)
    assert store.snapshot().snapshot_id == first


def test_cold_start_mines_each_language_given_and_skips_empty_ones(
    data_dir: Path, tmp_path: Path
) -> None:
    from codejury.core.settings import load_settings
    from codejury.training.coldstart import cold_start

    settings = load_settings({"run_dir": tmp_path / "run", "training": {"seed": 3}})
    store = TrainingStore(tmp_path / "store")
    problems = {"python": mbxp_problems(data_dir, "python", 2), "ruby": []}
    seen: list[tuple[str, int]] = []
    reports = cold_start(
        settings,
        problems,
        store,
        per_problem=2,
        iteration=4,
        progress=lambda language, done: seen.append((language, done)),
    )
    assert [r.language for r in reports] == ["python"]
    assert reports[0].problems == 2 and reports[0].canonical_passed == 2
    assert seen[-1] == ("python", 2)
    rows = store.rows()
    assert len(rows) == 2 + reports[0].kept
    assert {r.iteration for r in rows} == {4}
