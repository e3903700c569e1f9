"""Benchmarks' own canonical solutions through the real sandbox, as their harnesses run them.

- Every canonical solution PASSes unless expected_failures.toml lists it, and a listed one
  ends with the listed status. MultiPL-E has none: its Python problems borrow HumanEval's
  (HumanEval-X Python's) by problem number, the other languages get no positive check.
- The same programs with a broken body (a wrong constant, or a throw where no constant
  fits every return type) and empty completions never PASS, unless the file lists the
  task's tests as weak; and no run may fail because the harness is incomplete here (a
  missing library or module).

The default run takes the first SAMPLE problems of every (dataset, language); the full
sweep over every problem is marked slow.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from codejury.evaluation.datasets import (
    BenchmarkProblem,
    Dataset,
    DatasetFile,
    dataset_files,
    load,
)
from codejury.execution.executor import Executor
from codejury.execution.languages import get_language
from codejury.proto.v1 import domain_pb2

# Read at import: the autouse fixture in tests/conftest.py removes CODEJURY_* during tests.
DATA_DIR = Path(
    os.environ.get("CODEJURY_DATA_DIR", Path(__file__).parents[3].parent / "shared" / "data")
)
EXPECTED: dict[str, Any] = tomllib.loads(
    Path(__file__).with_name("expected_failures.toml").read_text()
)
SAMPLE = 2  # per (dataset, language): compiled languages cost seconds a program
PASSED = domain_pb2.PASSED

# A body that returns a wrong constant; a throw where no constant fits every return type.
WRONG_BODY = {
    "python": "return None",
    "javascript": "return undefined;",
    "typescript": "return undefined;",
    "cpp": "return {};",
    "php": "return null;",
    "ruby": "return nil",
    "rust": "return Default::default();",
    "java": 'throw new RuntimeException("broken body");',
    "csharp": 'throw new System.Exception("broken body");',
    "go": 'panic("broken body")',
}
_CLOSERS = {"}", "};", "end", ""}
# MultiPL-E: a wrong body that completes the prompt (the tests of C++, C#, Java, Rust and
# Bash close the function themselves).
MULTIPL_E_WRONG = {
    "bash": "    echo broken\n",
    "cpp": "    return {};\n",
    "go": '    panic("broken body")\n}\n',
    "java": '        throw new RuntimeException("broken body");\n',
    "javascript": "  return undefined;\n}\n",
    "lua": "  return nil\nend\n",
    "perl": "  return undef;\n}\n",
    "php": "  return null;\n}\n",
    "python": "    return None\n",
    "ruby": "  return nil\nend\n",
    "rust": "    return Default::default();\n",
    "typescript": "  return undefined;\n}\n",
}
# MultiPL-E's C# prompts end with the signature commented out ("//     public static ..."):
# the broken body restores it and returns default(T), so the tests' Debug.Assert calls run.
_CS_SIGNATURE = re.compile(r"^\s*//(\s*public static (.+?) \w+\(.*\{)\s*$")
# What a run prints when the harness is incomplete here (a library, a module), not the code.
_HARNESS_MISSING = re.compile(
    r"Cannot find module|module '[\w.]+' not found|Can't locate \S+\.pm|cannot load such file"
    r"|package [\w.]+ does not exist|cannot find package|can't find crate|unresolved import"
    r"|No such file or directory"
)


def _params(files: Iterable[DatasetFile]) -> list[Any]:
    params = [pytest.param(f, id=f"{f.dataset.value}-{f.language}") for f in files]
    return params or [
        pytest.param(None, marks=pytest.mark.skip(reason=f"no benchmark data at {DATA_DIR}"))
    ]


ALL = dataset_files(DATA_DIR) if DATA_DIR.is_dir() else []


def solved(file: DatasetFile) -> list[BenchmarkProblem]:
    """The problems of ``file`` that have a canonical solution (MultiPL-E Python: borrowed)."""
    problems = load(file)
    if file.dataset == Dataset.MULTIPL_E and file.language == "python":
        humaneval = [f for f in ALL if (f.dataset, f.language) == (Dataset.HUMANEVAL_X, "python")]
        borrowed = {
            p.problem.problem_id.split("/")[1]: p.canonical_solution
            for f in humaneval
            for p in load(f)
        }
        problems = [
            dataclasses.replace(
                p, canonical_solution=borrowed.get(p.problem.problem_id.split("_")[1])
            )
            for p in problems
        ]
    return [p for p in problems if p.canonical_solution]


WITH_CANONICAL = [f for f in ALL if solved(f)]
WITH_BROKEN = [f for f in ALL if f in WITH_CANONICAL or f.dataset == Dataset.MULTIPL_E]


def expected_failures(file: DatasetFile) -> dict[str, dict[str, str]]:
    listed: dict[str, dict[str, str]] = (
        EXPECTED["failures"].get(file.dataset.value, {}).get(file.language, {})
    )
    return listed


def weak_tests(file: DatasetFile, kind: str) -> set[str]:
    """Tasks whose tests a ``kind`` ("broken" body, "empty" completion) passes too."""
    weak = EXPECTED["weak_tests"].get(file.dataset.value, {}).get(file.language, {})
    return {task for task, entry in weak.items() if kind in entry["passes"]}


def broken_body(language: str, canonical: str) -> str:
    """``canonical`` with everything but its closing braces / ``end``s replaced."""
    lines = canonical.rstrip().splitlines()
    closers: list[str] = []
    while lines and lines[-1].strip() in _CLOSERS:
        closers.insert(0, lines.pop())
    code = [line for line in lines if line.strip()]
    indent = code[0][: len(code[0]) - len(code[0].lstrip())] if code else "    "
    return f"{indent}{WRONG_BODY[language]}\n" + "\n".join(closers) + "\n"


def multipl_e_broken(language: str, prompt: str) -> str:
    if language != "csharp":
        return MULTIPL_E_WRONG[language]
    signature = _CS_SIGNATURE.match(prompt.rstrip("\n").rsplit("\n", 1)[-1])
    if signature is None:  # a prompt that does open the method
        return '        throw new System.Exception("broken body");\n'
    return f"    {signature[1]}\n        return default({signature[2]});\n"


def broken_jobs(file: DatasetFile) -> list[tuple[BenchmarkProblem, str]]:
    if file.dataset == Dataset.MULTIPL_E:
        return [(p, multipl_e_broken(file.language, p.problem.prompt)) for p in load(file)]
    return [(p, broken_body(file.language, p.canonical_solution or "")) for p in solved(file)]


def _usable(file: DatasetFile | None) -> DatasetFile:
    if file is None:
        pytest.skip(f"no benchmark data at {DATA_DIR}")
    ok, why = get_language(file.language).available()
    if not ok:
        pytest.skip(f"{file.language} is not available here: {why}")
    return file


def _run(
    executor: Executor, jobs: Sequence[tuple[BenchmarkProblem, str]]
) -> list[domain_pb2.ExecutionResult]:
    def one(job: tuple[BenchmarkProblem, str]) -> domain_pb2.ExecutionResult:
        problem, completion = job
        return executor.execute(problem.problem, domain_pb2.Candidate(completion=completion))

    with ThreadPoolExecutor(max_workers=executor.config.parallelism) as pool:
        return list(pool.map(one, jobs))


def _why(problem: BenchmarkProblem, result: domain_pb2.ExecutionResult) -> str:
    status = domain_pb2.ExecutionStatus.Name(result.status)
    tail = (result.stderr or result.stdout)[-600:]
    return f"{problem.problem.problem_id}: {status} ({result.detail})\n{tail}"


def check_canonical(
    executor: Executor, file: DatasetFile, problems: list[BenchmarkProblem]
) -> list[str]:
    """Mismatches against the expectations, as messages (none: all as expected)."""
    listed = expected_failures(file)
    results = _run(executor, [(p, p.canonical_solution or "") for p in problems])
    wrong = []
    for problem, result in zip(problems, results, strict=True):
        expected = listed.get(problem.problem.problem_id)
        want = domain_pb2.ExecutionStatus.Value(expected["status"]) if expected else PASSED
        if result.status != want:
            want_name = domain_pb2.ExecutionStatus.Name(want)
            wrong.append(f"expected {want_name}: {_why(problem, result)}")
        elif _HARNESS_MISSING.search(result.stderr) and not expected:
            wrong.append(f"the harness is incomplete here: {_why(problem, result)}")
    return wrong


def check_not_passing(
    executor: Executor, file: DatasetFile, kind: str, jobs: list[tuple[BenchmarkProblem, str]]
) -> list[str]:
    """Messages for runs that PASS unless listed as weak (or are listed and do not), and
    for runs that failed because the harness is incomplete."""
    weak = weak_tests(file, kind)
    results = _run(executor, jobs)
    wrong = []
    for (problem, _), result in zip(jobs, results, strict=True):
        listed = problem.problem.problem_id in weak
        if (result.status == PASSED) != listed:
            verdict = "listed as weak but did not pass" if listed else "passed"
            wrong.append(f"{kind} {verdict}: {_why(problem, result)}")
        elif _HARNESS_MISSING.search(result.stderr + result.stdout):
            wrong.append(f"{kind}: the harness is incomplete here: {_why(problem, result)}")
    return wrong


def _fail(wrong: list[str], total: int, what: str) -> None:
    if wrong:
        pytest.fail(f"{len(wrong)} of {total} {what}:\n\n" + "\n\n".join(wrong), pytrace=False)


# -- the sample (every run) ---------------------------------------------------------------


@pytest.mark.parametrize("file", _params(WITH_CANONICAL))
@pytest.mark.parametrize("executor", ["warm"], indirect=True)  # the production path
def test_sampled_canonical_solutions_pass_unless_listed(
    executor: Executor, file: DatasetFile | None
) -> None:
    file = _usable(file)
    problems = solved(file)[:SAMPLE]
    _fail(check_canonical(executor, file, problems), len(problems), "canonical solutions")


@pytest.mark.parametrize("file", _params(WITH_BROKEN))
@pytest.mark.parametrize("executor", ["warm"], indirect=True)  # the production path
def test_sampled_broken_bodies_do_not_pass(executor: Executor, file: DatasetFile | None) -> None:
    file = _usable(file)
    jobs = broken_jobs(file)[:SAMPLE]
    _fail(check_not_passing(executor, file, "broken", jobs), len(jobs), "broken bodies")


@pytest.mark.parametrize("file", _params(ALL))
@pytest.mark.parametrize("executor", ["warm"], indirect=True)  # the production path
def test_sampled_empty_completions_do_not_pass(
    executor: Executor, file: DatasetFile | None
) -> None:
    file = _usable(file)
    jobs = [(p, "") for p in load(file)[:SAMPLE]]
    _fail(check_not_passing(executor, file, "empty", jobs), len(jobs), "empty completions")


def test_expectations_name_known_tasks_statuses_and_reasons() -> None:
    if not ALL:
        pytest.skip(f"no benchmark data at {DATA_DIR}")
    files = {(f.dataset.value, f.language): f for f in ALL}
    for section in ("failures", "weak_tests"):
        for dataset, languages in EXPECTED[section].items():
            for language, tasks in languages.items():
                file = files[(dataset, language)]  # a known dataset, a registry name
                ids = {p.problem.problem_id for p in load(file)}
                for task, entry in tasks.items():
                    assert task in ids, (dataset, language, task)
                    assert len(entry["reason"]) > 20, task
                    if section == "failures":
                        assert entry["status"] in set(domain_pb2.ExecutionStatus.keys()), task
                        assert entry["status"] != "PASSED", task
                    else:
                        assert entry["passes"] and set(entry["passes"]) <= {"broken", "empty"}


# -- the full sweep -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("executor", ["warm"], indirect=True)  # once: the sample covers both
@pytest.mark.parametrize("file", _params(ALL))
def test_full_sweep(executor: Executor, file: DatasetFile | None) -> None:
    """Every problem: canonical solutions as listed (and nothing listed that passes or is
    gone), broken bodies and empty completions never PASS unless listed as weak."""
    file = _usable(file)
    problems = solved(file)
    stale = sorted(set(expected_failures(file)) - {p.problem.problem_id for p in problems})
    wrong = [f"listed but there is no such canonical solution: {task}" for task in stale]
    wrong += check_canonical(executor, file, problems)
    if file in WITH_BROKEN:
        wrong += check_not_passing(executor, file, "broken", broken_jobs(file))
    wrong += check_not_passing(executor, file, "empty", [(p, "") for p in load(file)])
    _fail(wrong, len(load(file)), "problems (canonical, broken body, empty)")
