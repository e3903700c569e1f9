"""TypeScript judged as MultiPL-E judges it: tsc's type errors are COMPILE_ERROR (the
default), esbuild's transpile-only mode runs them; a batch type-checked in one node
process ends each program exactly as its own tsc does, and one bad program fails alone."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from codejury.core.settings import TypeScriptCheck
from codejury.execution.assembly import assemble
from codejury.execution.executor import Executor, ExecutorConfig
from codejury.execution.languages import Language, require_available, typescript
from codejury.execution.sandbox import Limits, Sandbox
from codejury.proto.v1 import domain_pb2

PROMPT = "function add(a: number, b: number): number {\n"
# MultiPL-E's own test preamble: it declares require itself (as @types/node does too)
TESTS = (
    "declare var require: any;\n"
    "const assert = require('node:assert');\n"
    "assert.deepEqual(add(1, 2), 3);\n"
    "assert.deepEqual(add(-4, 4), 0);\n"
)
PROBLEM = domain_pb2.Problem(problem_id="add", language="typescript", prompt=PROMPT, tests=TESTS)
# a type error that runs correctly: what only a type check catches
TYPE_ERROR = "  const sum: string = a + b;\n  return sum as any;\n}\n"
COMPLETIONS = {
    "passes": "  return a + b;\n}\n",
    "fails its assertion": "  return a - b;\n}\n",
    "type error": TYPE_ERROR,
    "syntax error": "  return a +;\n}\n",
    "passes too": "  return b + a;\n}\n",
}
UNDER_TSC = ["PASSED", "FAILED", "COMPILE_ERROR", "COMPILE_ERROR", "PASSED"]


@pytest.fixture(autouse=True)
def _tsc_here() -> None:
    for check in ("tsc", "none"):
        ok, why = _language(check).available()
        if not ok:
            pytest.skip(f"typescript ({check}) is not available here: {why}")


def _language(check: TypeScriptCheck) -> Language:
    return typescript.LANGUAGE if check == "tsc" else typescript.TRANSPILE_ONLY


def _executor(sandbox: Sandbox, check: TypeScriptCheck) -> Executor:
    cache = Path(tempfile.mkdtemp(prefix="codejury-ts-", dir="/var/tmp"))
    cache.chmod(0o755)
    return Executor(
        sandbox,
        ExecutorConfig(
            cache_dir=cache, default_limits=Limits(timeout_s=60), typescript_check=check
        ),
    )


def _candidates() -> list[domain_pb2.Candidate]:
    return [
        domain_pb2.Candidate(candidate_id=name, completion=completion)
        for name, completion in COMPLETIONS.items()
    ]


def _names(results: list[domain_pb2.ExecutionResult]) -> list[str]:
    return [domain_pb2.ExecutionStatus.Name(r.status) for r in results]


def test_the_setting_picks_the_toolchain() -> None:
    assert require_available("ts").compile[1].endswith("/typescript/bin/tsc")
    assert require_available("ts", typescript_check="none") is typescript.TRANSPILE_ONLY


def test_a_type_error_fails_under_tsc_and_runs_transpiled(sandbox: Sandbox) -> None:
    candidate = domain_pb2.Candidate(completion=TYPE_ERROR)
    checked = _executor(sandbox, "tsc").execute(PROBLEM, candidate)
    assert domain_pb2.ExecutionStatus.Name(checked.status) == "COMPILE_ERROR"
    assert "main.ts(2,9): error TS2322: Type 'number' is not assignable to type 'string'" in (
        checked.stderr
    )
    transpiled = _executor(sandbox, "none").execute(PROBLEM, candidate)
    assert domain_pb2.ExecutionStatus.Name(transpiled.status) == "PASSED"


@pytest.mark.slow  # 10 s; the type-error-is-COMPILE_ERROR test stays in the default lane
def test_a_batch_checks_in_one_process_and_one_bad_program_fails_alone(
    sandbox: Sandbox,
) -> None:
    batched, single = _executor(sandbox, "tsc"), _executor(sandbox, "tsc")
    programs = [assemble(PROBLEM, c) for c in COMPLETIONS.values()]
    assert batched.precompile("typescript", programs) == len(programs)
    assert batched.precompile("typescript", programs) == 0  # all in the cache now
    from_batch = batched.execute_batch(PROBLEM, _candidates())
    alone = [single.execute(PROBLEM, c) for c in _candidates()]
    assert _names(from_batch) == _names(alone) == UNDER_TSC
    for a, b in zip(from_batch, alone, strict=True):
        assert (a.detail, a.stderr) == (b.detail, b.stderr)  # tsc's own messages, file named
    assert _names(_executor(sandbox, "none").execute_batch(PROBLEM, _candidates())) == [
        "PASSED",
        "FAILED",
        "PASSED",  # the type error runs, and adds correctly
        "COMPILE_ERROR",  # esbuild sees syntax errors only
        "PASSED",
    ]
