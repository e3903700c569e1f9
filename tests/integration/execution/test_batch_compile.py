"""Java's batch compile: a batch's programs compiled in one javac JVM, in the real sandbox,
must end exactly as compiling each on its own does, and a batch that cannot finish must
cost no program its verdict."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest
from codejury.execution import languages
from codejury.execution.assembly import assemble
from codejury.execution.executor import Executor, ExecutorConfig
from codejury.execution.languages import get_language
from codejury.execution.sandbox import Limits, Sandbox
from codejury.proto.v1 import domain_pb2

PROMPT = "import java.util.*;\n\nclass Problem {\n    public static int inc(int x) {\n"
TESTS = (
    "    }\n"
    "    public static void main(String[] args) {\n"
    "        assert inc(1) == 2;\n"
    "        assert inc(-5) == -4;\n"
    "    }\n"
    "}\n"
)
PROBLEM = domain_pb2.Problem(problem_id="inc", language="java", prompt=PROMPT, tests=TESTS)
COMPLETIONS = [
    "        return x + 1;\n",  # passes
    "        return x;\n",  # compiles, fails its assertion
    "        return x + ;\n",  # a syntax error
    '        return "one";\n',  # a type error
    "        return x + 1;\n",  # the first again: compiled once
    "        return 1 + x;\n",  # passes
]
EXPECTED = ["PASSED", "FAILED", "COMPILE_ERROR", "COMPILE_ERROR", "PASSED", "PASSED"]


@pytest.fixture(autouse=True)
def _java_here() -> None:
    ok, why = get_language("java").available()
    if not ok:
        pytest.skip(f"java is not available here: {why}")


def _executor(sandbox: Sandbox) -> Executor:
    cache = Path(tempfile.mkdtemp(prefix="codejury-batch-", dir="/var/tmp"))
    cache.chmod(0o755)
    return Executor(sandbox, ExecutorConfig(cache_dir=cache, default_limits=Limits(timeout_s=20)))


def _candidates() -> list[domain_pb2.Candidate]:
    return [
        domain_pb2.Candidate(candidate_id=f"c{i}", completion=c) for i, c in enumerate(COMPLETIONS)
    ]


def _names(results: list[domain_pb2.ExecutionResult]) -> list[str]:
    return [domain_pb2.ExecutionStatus.Name(r.status) for r in results]


def test_a_batch_compiles_once_per_distinct_program_and_ends_as_single_compiles(
    sandbox: Sandbox,
) -> None:
    batched, single = _executor(sandbox), _executor(sandbox)
    programs = [assemble(PROBLEM, c) for c in COMPLETIONS]
    assert batched.precompile("java", programs) == len(set(programs))
    assert batched.precompile("java", programs) == 0  # all cached now
    from_batch = batched.execute_batch(PROBLEM, _candidates())
    alone = [single.execute(PROBLEM, c) for c in _candidates()]
    assert _names(from_batch) == _names(alone) == EXPECTED
    for a, b in zip(from_batch, alone, strict=True):
        assert a.detail == b.detail
        if a.status == domain_pb2.COMPILE_ERROR:
            assert a.stderr == b.stderr  # the same javac messages, file names included
            assert "Problem.java:" in a.stderr and "error:" in a.stderr
    # each batch-compiled program reports its compile time once, by one of its runs
    for completion in set(COMPLETIONS):
        timed = sorted(
            r.compile_time_ms > 0
            for c, r in zip(COMPLETIONS, from_batch, strict=True)
            if c == completion
        )
        assert timed == [False] * (len(timed) - 1) + [True], completion


def test_a_batch_that_cannot_run_leaves_every_program_to_its_own_compile(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    java = get_language("java")
    assert java.batch_compile is not None
    broken = dataclasses.replace(
        java,
        batch_compile=dataclasses.replace(
            java.batch_compile,
            run=tuple(
                a.replace("CodejuryBatchCompile", "NoSuchClass") for a in java.batch_compile.run
            ),
        ),
    )
    monkeypatch.setitem(languages._BY_ALIAS, "java", broken)
    executor = _executor(sandbox)
    programs = [assemble(PROBLEM, c) for c in COMPLETIONS]
    assert executor.precompile("java", programs) == 0
    assert _names(executor.execute_batch(PROBLEM, _candidates())) == EXPECTED
