"""EvalPlus files in its own format, written here: expected outputs from the canonical
solution, and candidates judged as EvalPlus judges them (atol, its oracles).

The programs run in a plain subprocess of this interpreter here (the harness is pure
Python); tests/integration/evaluation/test_evalplus_sandbox.py runs them in the sandbox."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from codejury.evaluation import evalplus_harness as harness
from codejury.evaluation.datasets import Dataset, DatasetError
from codejury.evaluation.evalplus import (
    EvalPlusTask,
    load_evalplus,
    prepare,
)
from codejury.execution.assembly import assemble
from codejury.proto.v1 import domain_pb2


def run_plain(
    problem: domain_pb2.Problem, candidate: domain_pb2.Candidate
) -> domain_pb2.ExecutionResult:
    """The program in a subprocess: PASSED on exit 0, else FAILED (with its stderr)."""
    done = subprocess.run(
        [sys.executable, "-c", assemble(problem, candidate.completion)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return domain_pb2.ExecutionResult(
        candidate_id=candidate.candidate_id,
        status=domain_pb2.PASSED if done.returncode == 0 else domain_pb2.FAILED,
        exit_code=done.returncode,
        stdout=done.stdout,
        stderr=done.stderr,
    )


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def humaneval_row(task_id: str, body: str, inputs: list[Any], **fields: Any) -> dict[str, Any]:
    """A HumanEval+ row: base and plus inputs, the fields the release has."""
    row = {
        "task_id": task_id,
        "prompt": 'def f(x):\n    """f of x."""\n',
        "entry_point": "f",
        "canonical_solution": body,
        "test": "\n\nMETADATA = {}\n\ndef check(candidate):\n    pass\n",
        "contract": "",
        "base_input": inputs[:1],
        "plus_input": inputs[1:],
        "atol": 0,
    }
    row.update(fields)
    return row


def mbpp_row(task_id: str, entry_point: str, code: str, inputs: list[Any]) -> dict[str, Any]:
    """An MBPP+ row: the prompt is a docstring, the canonical solution the whole function."""
    return {
        "task_id": task_id,
        "code": code,
        "prompt": '"""\nWrite a function.\n"""\n',
        "source_file": "Benchmark Questions Verification V2.ipynb",
        "test_imports": [],
        "test_list": [],
        "test": "",
        "entry_point": entry_point,
        "canonical_solution": code,
        "base_input": inputs[:1],
        "plus_input": inputs[1:],
        "atol": 0,
    }


def verdicts(task_problems: list[Any], completions: dict[str, str]) -> dict[str, str]:
    problem = task_problems[0].problem
    return {
        name: domain_pb2.ExecutionStatus.Name(
            run_plain(problem, domain_pb2.Candidate(completion=completion)).status
        )
        for name, completion in completions.items()
    }


def test_float_outputs_are_compared_within_a_tolerance(tmp_path: Path) -> None:
    path = write(
        tmp_path / "HumanEvalPlus-v0.1.10.jsonl",
        [humaneval_row("HumanEval/2", "    return x / 3\n", [[1.0], [2.5], [1e9]])],
    )
    (task,) = load_evalplus(path)
    assert (task.dataset, task.count, task.kind) == (Dataset.EVALPLUS_HUMANEVAL, 3, "humaneval")
    prepared = prepare([task], run_plain)
    assert prepared.failed == {}
    assert verdicts(
        prepared.problems,
        {
            "canonical": "    return x / 3\n",
            "rounding noise": "    return x / 3 + 1e-9\n",
            "too coarse": "    return round(x / 3, 2)\n",
            "wrong type": "    return str(x / 3)\n",
            "raises": "    raise ValueError(x)\n",
            "empty": "",
        },
    ) == {
        "canonical": "PASSED",
        "rounding noise": "PASSED",
        "too coarse": "FAILED",
        "wrong type": "FAILED",
        "raises": "FAILED",
        "empty": "FAILED",
    }


def test_a_task_atol_loosens_the_comparison_and_every_input_counts(tmp_path: Path) -> None:
    rows = [
        humaneval_row("HumanEval/4", "    return x * 0.5\n", [[1.0], [3.0]], atol=0.01),
        humaneval_row("HumanEval/5", "    return abs(x)\n", [[1], [-4]]),
    ]
    loose, plus = prepare(load_evalplus(write(tmp_path / "h.jsonl", rows)), run_plain).problems
    assert verdicts([loose], {"close": "    return x * 0.5 + 0.005\n"}) == {"close": "PASSED"}
    # the base input passes, the plus input does not: the "plus" score fails it
    assert verdicts([plus], {"base only": "    return x\n"}) == {"base only": "FAILED"}


def test_mbpp_plus_inputs_take_the_types_the_canonical_solution_expects(tmp_path: Path) -> None:
    code = (
        "def similar_elements(a, b):\n"
        "    assert isinstance(a, tuple) and isinstance(b, tuple)\n"
        "    return tuple(set(a) & set(b))\n"
    )
    path = write(
        tmp_path / "MbppPlus-v0.2.0.jsonl",
        [mbpp_row("Mbpp/2", "similar_elements", code, [[[3, 4, 5, 6], [5, 7, 4, 10]], [[1], [2]]])],
    )
    (task,) = load_evalplus(path)
    assert task.dataset == Dataset.EVALPLUS_MBPP
    assert task.inputs == "[[(3, 4, 5, 6), (5, 7, 4, 10)], [(1,), (2,)]]"
    prepared = prepare([task], run_plain)
    assert prepared.failed == {}
    # Mbpp/2 is one of the tasks EvalPlus compares as sets: any order passes
    reordered = (
        "def similar_elements(a, b):\n    return tuple(sorted(set(a) & set(b), reverse=True))\n"
    )
    assert verdicts(
        prepared.problems,
        {
            "canonical": code,
            "reordered": reordered,
            "missing one": "def similar_elements(a, b):\n    return (4,)\n",
        },
    ) == {"canonical": "PASSED", "reordered": "PASSED", "missing one": "FAILED"}


def test_a_canonical_solution_without_outputs_is_left_out_with_the_reason(
    tmp_path: Path,
) -> None:
    rows = [
        humaneval_row("HumanEval/0", "    return x\n", [[1]]),
        humaneval_row("HumanEval/1", "    raise RuntimeError('broken oracle')\n", [[1]]),
        humaneval_row("HumanEval/3", "    return object()\n", [[1]]),
    ]
    prepared = prepare(load_evalplus(write(tmp_path / "h.jsonl", rows)), run_plain)
    assert [p.problem.problem_id for p in prepared.problems] == ["HumanEval/0"]
    assert prepared.failed.keys() == {"HumanEval/1", "HumanEval/3"}
    assert "FAILED: RuntimeError: broken oracle" in prepared.failed["HumanEval/1"]
    assert "cannot be written as a literal" in prepared.failed["HumanEval/3"]


def test_expected_outputs_are_cached_by_content(tmp_path: Path) -> None:
    rows = [humaneval_row("HumanEval/0", "    return [x, float('inf'), {x}]\n", [[1], [2]])]
    tasks = load_evalplus(write(tmp_path / "h.jsonl", rows))
    first = prepare(tasks, run_plain, cache_dir=tmp_path / "cache")

    def unused(*_args: object) -> domain_pb2.ExecutionResult:
        raise AssertionError("the cache should have answered")

    assert prepare(tasks, unused, cache_dir=tmp_path / "cache") == first
    assert "[[1, inf, {1}], [2, inf, {2}]]" in first.problems[0].problem.tests


def test_a_file_of_another_format_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.jsonl",
        [{"task_id": "MBPP/1", "language": "python", "prompt": "", "test": ""}],
    )
    with pytest.raises(DatasetError, match=r"is a mbxp file, not EvalPlus's"):
        load_evalplus(path)
    bad = write(tmp_path / "h.jsonl", [humaneval_row("HumanEval/0", "", [[1]], atol="x")])
    with pytest.raises(DatasetError, match=r"HumanEval/0: atol='x' is not a number"):
        load_evalplus(bad)


@pytest.mark.parametrize(
    ("out", "exp", "atol", "oracle", "same"),
    [
        (1, 1, 0, ("humaneval", "f"), True),
        (0.1 + 0.2, 0.3, 0, ("humaneval", "f"), True),  # floats: 1e-6 without an atol
        ([0.1 + 0.2, 1.0], [0.3, 1.0], 0, ("humaneval", "f"), True),
        ([0.3], [0.3, 1.0], 0, ("humaneval", "f"), False),  # lengths differ
        (1, 1.0000001, 0.001, ("humaneval", "f"), False),  # int for float: types differ
        (math.nan, math.nan, 0, ("humaneval", "f"), False),  # NaN is close to nothing
        (math.inf, math.inf, 0, ("humaneval", "f"), True),
        ("a", "b", 0.1, ("humaneval", "f"), False),  # strings are never "close"
        ([3, 1], [1, 3], 0, ("mbpp", "larg_nnum"), True),  # compared as sets
        ("match", True, 0, ("mbpp", "check_str"), True),  # "returned something"
        (None, True, 0, ("mbpp", "check_str"), False),
        (7, 3, 0, ("mbpp", "are_equivalent"), True),  # its oracle accepts any answer
        (0, 5, 0, ("mbpp", "sum_div"), True),
        ([3, 1], [1, 3], 0, ("humaneval", "larg_nnum"), False),  # MBPP's oracles only
    ],
)
def test_the_comparison_is_evalplus_check_output(
    out: Any, exp: Any, atol: float, oracle: tuple[str, str], same: bool
) -> None:
    dataset, entry_point = oracle  # which benchmark, which task's oracle
    assert harness._cj_matches([], out, exp, atol, dataset=dataset, entry_point=entry_point) is same


def test_find_zero_is_judged_by_the_root_it_returns() -> None:
    xs = [-6, 11, -6, 1]  # (x - 1)(x - 2)(x - 3)
    oracle = {"dataset": "humaneval", "entry_point": "find_zero"}
    assert harness._cj_matches([xs], 2.0000000001, 1.0, 1e-6, **oracle)
    assert not harness._cj_matches([xs], 2.5, 2.5, 1e-6, **oracle)


def test_a_task_dataclass_is_what_a_row_says(tmp_path: Path) -> None:
    rows = [humaneval_row("HumanEval/9", "    return x\n", [["a"], ["b\n"]], atol=1e-3)]
    (task,) = load_evalplus(write(tmp_path / "h.jsonl", rows))
    assert task == EvalPlusTask(
        task_id="HumanEval/9",
        dataset=Dataset.EVALPLUS_HUMANEVAL,
        prompt=rows[0]["prompt"],
        entry_point="f",
        canonical_solution="    return x\n",
        inputs="[['a'], ['b\\n']]",
        count=2,
        atol=1e-3,
    )
