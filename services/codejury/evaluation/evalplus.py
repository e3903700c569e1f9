"""EvalPlus's HumanEval+ and MBPP+ (``HumanEvalPlus-v*.jsonl.gz``, ``MbppPlus-v*.jsonl.gz``),
judged as EvalPlus judges them.

An EvalPlus row has no test program: it has inputs (``base_input``, the original
benchmark's, and ``plus_input``, EvalPlus's own) and a canonical solution. The expected
outputs are what the canonical solution returns on them, so ``prepare`` runs each
canonical solution once in the sandbox over all its inputs (the outputs come back as
Python literals, one a line, and are cached by content), then writes each task's tests:
the inputs, the expected outputs and EvalPlus's comparison (``evalplus_harness``: equality,
``atol`` for floats, its per-task oracles). A candidate passes when it matches on every
input, base and plus: the "HumanEval+" / "MBPP+" score.

Where this differs from EvalPlus's own harness: one wall-clock limit for the whole run
(the sandbox's) instead of a limit per input derived from the canonical solution's time,
and MBPP+'s two oracles that recompute a reference (``surface_Area``, Mbpp/581;
``digit_distance_nums``, Mbpp/558) are plain comparisons.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codejury.evaluation.datasets import (
    EVALPLUS,
    FORMAT_FIELDS,
    BenchmarkProblem,
    Dataset,
    DatasetError,
    detect,
    read_rows,
)
from codejury.execution.languages import get_language
from codejury.proto.v1 import domain_pb2

#: The checks appended to every EvalPlus program (see ``evalplus_harness``).
HARNESS = (
    importlib.resources.files("codejury.evaluation").joinpath("evalplus_harness.py").read_text()
)

# Runs one program and returns its result: an ``ExecutionBackend``'s batch of one.
RunProgram = Callable[[domain_pb2.Problem, domain_pb2.Candidate], domain_pb2.ExecutionResult]


@dataclass(frozen=True)
class EvalPlusTask:
    task_id: str  # "HumanEval/0", "Mbpp/2"
    dataset: Dataset  # EVALPLUS_HUMANEVAL or EVALPLUS_MBPP
    prompt: str
    entry_point: str
    canonical_solution: str
    inputs: str  # the argument lists, base then plus, as one Python literal
    count: int  # how many inputs
    atol: float

    @property
    def kind(self) -> str:
        """The oracles' name for the benchmark: "humaneval" or "mbpp"."""
        return "mbpp" if self.dataset == Dataset.EVALPLUS_MBPP else "humaneval"


@dataclass(frozen=True)
class Prepared:
    problems: list[BenchmarkProblem]  # the tasks whose expected outputs are known
    failed: dict[str, str]  # task id -> why the canonical solution gave no outputs


def load_evalplus(path: Path) -> list[EvalPlusTask]:
    """The tasks of an EvalPlus file, inputs as the canonical solutions take them."""
    dataset = detect(path).dataset
    if dataset not in EVALPLUS:
        raise DatasetError(f"{path} is a {dataset.value} file, not EvalPlus's: load it by path")
    tasks = []
    for row in read_rows(path, dataset, FORMAT_FIELDS["EvalPlus (HumanEval+, MBPP+)"]):
        task_id = str(row["task_id"])
        inputs = [*row["base_input"], *row["plus_input"]]
        if dataset == Dataset.EVALPLUS_MBPP:
            inputs = [_mbpp_arguments(task_id, args) for args in inputs]
        try:
            atol = float(row["atol"] or 0)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: {task_id}: atol={row['atol']!r} is not a number") from exc
        tasks.append(
            EvalPlusTask(
                task_id=task_id,
                dataset=dataset,
                prompt=row["prompt"],
                entry_point=row["entry_point"],
                canonical_solution=row["canonical_solution"],
                inputs=repr(inputs),
                count=len(inputs),
                atol=atol,
            )
        )
    return tasks


def ground_truth_problem(task: EvalPlusTask) -> domain_pb2.Problem:
    """The program that prints the canonical solution's outputs (with it as completion)."""
    call = f"_cj_expected({task.entry_point}, {task.inputs!r})"
    return _problem(task, HARNESS + "\n" + call + "\n")


def problem_of(task: EvalPlusTask, expected: Sequence[str]) -> BenchmarkProblem:
    """The task as a problem whose tests compare with ``expected`` (one literal an input)."""
    outputs = "[" + ", ".join(expected) + "]"
    call = (
        f"_cj_check({task.entry_point}, {task.inputs!r}, {outputs!r}, atol={task.atol!r}, "
        f"dataset={task.kind!r}, entry_point={task.entry_point!r})"
    )
    return BenchmarkProblem(_problem(task, HARNESS + "\n" + call + "\n"), task.canonical_solution)


def prepare(
    tasks: Sequence[EvalPlusTask],
    run: RunProgram,
    *,
    cache_dir: Path | None = None,
    parallelism: int = 2,
) -> Prepared:
    """Each task's expected outputs (from ``cache_dir`` when it has them, else by running
    its canonical solution through ``run``), and the problems built from them."""

    def one(task: EvalPlusTask) -> list[str] | str:
        cached = _cache_file(cache_dir, task)
        if cached is not None and cached.is_file():
            return list(json.loads(cached.read_text(encoding="utf-8")))
        outputs = _run_ground_truth(task, run)
        if cached is not None and not isinstance(outputs, str):
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(outputs), encoding="utf-8")
        return outputs

    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        found = list(pool.map(one, tasks))
    problems, failed = [], {}
    for task, outputs in zip(tasks, found, strict=True):
        if isinstance(outputs, str):
            failed[task.task_id] = outputs
        else:
            problems.append(problem_of(task, outputs))
    return Prepared(problems, failed)


def _run_ground_truth(task: EvalPlusTask, run: RunProgram) -> list[str] | str:
    """The outputs, one literal an input, or why there are none."""
    candidate = domain_pb2.Candidate(
        candidate_id=f"{task.task_id}:canonical",
        problem_id=task.task_id,
        completion=task.canonical_solution,
        source=domain_pb2.CANDIDATE_SOURCE_CANONICAL,
    )
    result = run(ground_truth_problem(task), candidate)
    if result.status != domain_pb2.PASSED:
        status = domain_pb2.ExecutionStatus.Name(result.status)
        tail = (result.stderr or result.detail).strip().splitlines()[-1:] or [""]
        return f"the canonical solution ended {status}: {tail[0][:300]}"
    lines = result.stdout.splitlines()
    if result.stdout_truncated:
        return (
            f"the canonical solution's outputs ({task.count} inputs) were cut at the run's "
            "output cap: raise execution.ceiling_output_kb"
        )
    if len(lines) != task.count:
        return f"the canonical solution printed {len(lines)} outputs for {task.count} inputs"
    return lines


def _cache_file(cache_dir: Path | None, task: EvalPlusTask) -> Path | None:
    if cache_dir is None:
        return None
    key = hashlib.sha256(
        "\0".join(
            (HARNESS, task.task_id, task.prompt, task.canonical_solution, task.inputs)
        ).encode()
    ).hexdigest()[:32]
    return cache_dir / f"{key}.json"


def _problem(task: EvalPlusTask, tests: str) -> domain_pb2.Problem:
    return domain_pb2.Problem(
        problem_id=task.task_id,
        language="python",
        prompt=task.prompt,
        tests=tests,
        stop_sequences=get_language("python").stop_sequences,
        dataset=task.dataset.value,
        entry_point=task.entry_point,
        assembly=domain_pb2.PROGRAM_ASSEMBLY_MULTIPL_E,
    )


# MBPP+ keeps tuples, sets and complex numbers as JSON lists and strings; EvalPlus turns
# them back per task (evalplus.data.mbpp.mbpp_deserialize_inputs), and so must we, or
# the canonical solutions see other types than EvalPlus gives them.
def _tuple(value: Any) -> Any:
    return tuple(value)


def _deep_tuple(value: Any) -> Any:
    return tuple(map(_deep_tuple, value)) if isinstance(value, list) else value


def _each_arg(convert: Callable[[Any], Any]) -> Callable[[list[Any]], Any]:
    return lambda args: [convert(arg) for arg in args]


def _items_of_each_arg(convert: Callable[[Any], Any]) -> Callable[[list[Any]], Any]:
    return lambda args: [[convert(item) for item in arg] for arg in args]


_MBPP_GROUPS: list[tuple[frozenset[int], Callable[[list[Any]], Any]]] = [
    (
        frozenset(
            {2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596}
            | {616, 630, 726, 740, 744, 809}
        ),
        _each_arg(_tuple),
    ),
    (
        frozenset({63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780}),
        _items_of_each_arg(_tuple),
    ),
    (frozenset({75, 413, 444, 753}), lambda a: [[tuple(x) for x in a[0]], a[1]]),
    (frozenset({106, 750}), lambda a: [a[0], tuple(a[1])]),
    (
        frozenset({115}),
        # an empty list becomes {} (a dict), as EvalPlus makes it
        lambda a: [[set(x) if isinstance(x, list) and x else {} for x in a[0]]],
    ),
    (frozenset({124}), lambda a: (float(a[0]), complex(a[1]))),
    (frozenset({250, 405, 446, 617, 720, 763, 808}), lambda a: [tuple(a[0]), a[1]]),
    (frozenset({259, 401, 445}), _each_arg(lambda arg: tuple(map(tuple, arg)))),
    (
        frozenset({278}),
        lambda a: [tuple(tuple(x) if isinstance(x, list) else x for x in a[0])],
    ),
    (frozenset({307}), lambda a: [tuple(a[0]), a[1], a[2]]),
    (frozenset({722}), lambda a: [{k: tuple(v) for k, v in a[0].items()}, *a[1:]]),
    (frozenset({252}), lambda a: [complex(a[0])]),
    (frozenset({580, 615, 791}), _deep_tuple),
]


def _mbpp_arguments(task_id: str, args: list[Any]) -> Any:
    number = task_id.rsplit("/", 1)[-1]
    if not number.isdigit():
        return args
    for tasks, convert in _MBPP_GROUPS:
        if int(number) in tasks:
            return convert(args)
    return args
