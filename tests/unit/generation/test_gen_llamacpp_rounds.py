"""How the llama.cpp backend splits a problem's sequences into requests (pure): every
sequence keeps the seed it has in one request per block, whatever the number of engines."""

from __future__ import annotations

import pytest
from codejury.generation.backends import Job, llamacpp
from codejury.generation.backends.llamacpp import default_engines, plan_rounds, round_seed
from codejury.generation.prompts import Prompt, PromptStyle
from codejury.generation.stopping import StopRule

JOB = Job(0, Prompt(PromptStyle.COMPLETION, "def f():\n", (), StopRule(sequences=("\n",))), 32)


def sequence_seeds(n: int, engines: int, block_rows: int = 8) -> dict[int, int]:
    """Each sequence's seed as llama.cpp sets it: its request's seed + its place there."""
    seeds: dict[int, int] = {}
    for r in plan_rounds([JOB], n, greedy=False, seed=1234, block_rows=block_rows, engines=engines):
        for k in range(r.rows):
            assert r.first + k not in seeds  # no sequence is sampled twice
            seeds[r.first + k] = r.seed + k
    return seeds


@pytest.mark.parametrize("n", [1, 3, 8, 9, 16, 21])
@pytest.mark.parametrize("engines", [2, 3, 4, 8])
def test_every_sequence_has_its_one_engine_seed_with_any_number_of_engines(
    n: int, engines: int
) -> None:
    alone = sequence_seeds(n, 1)
    assert sorted(alone) == list(range(n))
    assert alone == {i: round_seed(1234, i // 8) + i % 8 for i in range(n)}
    assert sequence_seeds(n, engines) == alone


def test_a_block_is_split_evenly_across_the_engines_and_never_across_blocks() -> None:
    rounds = plan_rounds([JOB], 11, greedy=False, seed=5, block_rows=8, engines=3)
    assert [(r.first, r.rows) for r in rounds] == [(0, 3), (3, 3), (6, 2), (8, 1), (9, 1), (10, 1)]
    two = plan_rounds([JOB, JOB], 8, greedy=False, seed=5, block_rows=8, engines=2)
    assert [(r.job.problem, r.first, r.rows) for r in two] == [(0, 0, 4), (0, 4, 4)] * 2


def test_greedy_is_one_sequence_per_problem_whatever_the_engines() -> None:
    rounds = plan_rounds([JOB, JOB], 8, greedy=True, seed=5, block_rows=8, engines=4)
    assert [(r.first, r.rows, r.seed) for r in rounds] == [(0, 1, 5), (0, 1, 5)]


@pytest.mark.parametrize(
    ("cpus", "threads", "engines"), [(1, 1, 1), (2, 1, 2), (4, 3, 1), (4, 2, 2), (16, 1, 4)]
)
def test_default_engines_fill_the_usable_cpus_up_to_four(
    monkeypatch: pytest.MonkeyPatch, cpus: int, threads: int, engines: int
) -> None:
    monkeypatch.setattr(llamacpp, "usable_cpus", lambda: cpus)
    assert default_engines(threads) == engines
