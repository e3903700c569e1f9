"""EvalPlus through the real sandbox: the canonical solutions' outputs computed there, and
candidates judged there (files in EvalPlus's format, written here)."""

from __future__ import annotations

import json
from pathlib import Path

from codejury.evaluation.evalplus import load_evalplus, prepare
from codejury.execution.executor import Executor
from codejury.proto.v1 import domain_pb2

ROWS = [
    {
        "task_id": "HumanEval/2",
        "prompt": 'def truncate_number(number: float) -> float:\n    """The decimals."""\n',
        "entry_point": "truncate_number",
        "canonical_solution": "    return number % 1.0\n",
        "contract": "",
        "test": "",
        "base_input": [[3.5], [1.33]],
        "plus_input": [[123.456], [1e-7]],
        "atol": 1e-6,
    },
    {
        "task_id": "HumanEval/7",
        "prompt": "def filter_by_substring(strings: list, substring: str) -> list:\n",
        "entry_point": "filter_by_substring",
        "canonical_solution": "    return [x for x in strings if substring in x]\n",
        "contract": "",
        "test": "",
        "base_input": [[[], "john"], [["xxx", "asd", "xxy"], "xx"]],
        "plus_input": [[["a\nb", "c"], "\n"]],
        "atol": 0,
    },
]


def test_canonical_outputs_come_from_the_sandbox_and_judge_candidates(
    executor: Executor, tmp_path: Path
) -> None:
    path = tmp_path / "HumanEvalPlus-v0.1.10.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    prepared = prepare(
        load_evalplus(path),
        executor.execute,
        parallelism=2,
    )
    assert prepared.failed == {}
    truncate, substring = prepared.problems
    runs = {
        "truncate canonical": (truncate, truncate.canonical_solution or ""),
        "truncate by int()": (truncate, "    return number - int(number)\n"),
        "truncate wrong": (truncate, "    return number\n"),
        "substring canonical": (substring, substring.canonical_solution or ""),
        "substring prefix only": (
            substring,
            "    return [x for x in strings if x.startswith(substring)]\n",
        ),
    }
    found = {
        name: domain_pb2.ExecutionStatus.Name(
            executor.execute(problem.problem, domain_pb2.Candidate(completion=completion)).status
        )
        for name, (problem, completion) in runs.items()
    }
    assert found == {
        "truncate canonical": "PASSED",
        "truncate by int()": "PASSED",  # equal within atol, not bit for bit
        "truncate wrong": "FAILED",
        "substring canonical": "PASSED",
        "substring prefix only": "FAILED",  # passes the base inputs, fails a plus input
    }
