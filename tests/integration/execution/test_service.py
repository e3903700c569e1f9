"""The Execution gRPC service over real Celery workers and real sandboxes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from codejury.core.grpc import make_server
from codejury.core.settings import Settings, load_settings
from codejury.execution.backends import CeleryBackend
from codejury.execution.celery_app import make_celery_app
from codejury.execution.languages import get_language
from codejury.execution.local_worker import LocalWorker
from codejury.execution.sandbox import Sandbox
from codejury.execution.service import ExecutionServicer, register
from codejury.proto.v1 import domain_pb2, services_pb2, services_pb2_grpc

PROBLEM = domain_pb2.Problem(
    problem_id="inc",
    language="python",
    prompt="def inc(x):\n",
    tests="assert inc(1) == 2\nassert inc(-5) == -4\n",
)


@pytest.fixture(scope="module")
def settings(
    tmp_path_factory: pytest.TempPathFactory, cgroup_parent: str, sandbox: Sandbox, cache_root: Path
) -> Settings:
    return load_settings(
        {
            "run_dir": tmp_path_factory.mktemp("exec-service"),
            "execution": {"cgroup_parent": cgroup_parent, "cache_dir": cache_root / "service"},
            "celery": {"worker_concurrency": 2},
        }
    )


@pytest.fixture(scope="module")
def stub(settings: Settings) -> Iterator[services_pb2_grpc.ExecutionStub]:
    app = make_celery_app(settings)
    with LocalWorker(settings, app):
        servicer = ExecutionServicer(settings, CeleryBackend(app, timeout_s=120))
        served = make_server([register(servicer)], host="127.0.0.1", port=0, max_workers=4)
        served.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{served.port}")
        try:
            yield services_pb2_grpc.ExecutionStub(channel)
        finally:
            channel.close()
            served.stop(5)


def _candidate(i: int, completion: str) -> domain_pb2.Candidate:
    return domain_pb2.Candidate(
        candidate_id=f"c{i}", problem_id="inc", index=i, completion=completion
    )


def test_execute_batch_of_64_returns_64_results_in_order(
    stub: services_pb2_grpc.ExecutionStub,
) -> None:
    right, wrong, crash = "    return x + 1\n", "    return x\n", "    import os; os.abort()\n"
    completions = [(right, wrong, crash)[i % 3] for i in range(64)]
    response = stub.ExecuteBatch(
        services_pb2.ExecuteBatchRequest(
            problem=PROBLEM, candidates=[_candidate(i, c) for i, c in enumerate(completions)]
        ),
        timeout=300,
    )
    assert [r.candidate_id for r in response.results] == [f"c{i}" for i in range(64)]
    expected = {right: domain_pb2.PASSED, wrong: domain_pb2.FAILED, crash: domain_pb2.RUNTIME_ERROR}
    assert [r.status for r in response.results] == [expected[c] for c in completions]


def test_execute_one(stub: services_pb2_grpc.ExecutionStub) -> None:
    result = stub.Execute(
        services_pb2.ExecuteRequest(
            problem=PROBLEM,
            candidate=_candidate(0, "    while True: pass\n"),
            limits=services_pb2.ExecutionLimits(timeout_s=1),
        ),
        timeout=60,
    )
    assert result.status == domain_pb2.TIMEOUT and result.candidate_id == "c0"


@pytest.mark.parametrize(
    ("problem", "completion", "message"),
    [
        (domain_pb2.Problem(language="cobol", prompt="x"), "y", "unknown language 'cobol'"),
        (domain_pb2.Problem(language="python"), "   ", "candidates[0]: the program"),
        (domain_pb2.Problem(language="python"), "#" * (10 << 20), "over the limit"),
    ],
    ids=["unknown-language", "empty-program", "10MB-program"],
)
def test_bad_requests_are_invalid_argument_and_the_server_keeps_serving(
    stub: services_pb2_grpc.ExecutionStub,
    problem: domain_pb2.Problem,
    completion: str,
    message: str,
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.ExecuteBatch(
            services_pb2.ExecuteBatchRequest(
                problem=problem, candidates=[_candidate(0, completion)]
            ),
            timeout=60,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()
    ok = stub.Execute(
        services_pb2.ExecuteRequest(problem=PROBLEM, candidate=_candidate(1, "    return x + 1\n")),
        timeout=60,
    )
    assert ok.status == domain_pb2.PASSED


def test_empty_batch_and_bad_limits_name_the_field(stub: services_pb2_grpc.ExecutionStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.ExecuteBatch(services_pb2.ExecuteBatchRequest(problem=PROBLEM), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "candidates is empty" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.Execute(
            services_pb2.ExecuteRequest(
                problem=PROBLEM,
                candidate=_candidate(0, "    return 1\n"),
                limits=services_pb2.ExecutionLimits(timeout_s=-1),
            ),
            timeout=30,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "limits.timeout_s" in info.value.details()


def test_list_languages_says_what_runs_here(stub: services_pb2_grpc.ExecutionStub) -> None:
    languages = {
        info.name: info
        for info in stub.ListLanguages(services_pb2.ListLanguagesRequest()).languages
    }
    assert {
        "python",
        "cpp",
        "java",
        "php",
        "typescript",
        "csharp",
        "bash",
        "javascript",
        "go",
        "rust",
        "ruby",
        "lua",
        "perl",
    } <= set(languages)
    assert languages["python"].available and languages["cpp"].compiled
    assert all(info.available or info.reason for info in languages.values())


def test_results_are_cached_compiles_for_repeated_programs(
    settings: Settings, stub: services_pb2_grpc.ExecutionStub
) -> None:
    problem = domain_pb2.Problem(
        language="cpp",
        prompt="#include <cassert>\nint inc(int x) {\n",
        tests="int main() { assert(inc(1) == 2); }\n",
    )
    first, second = (
        stub.Execute(
            services_pb2.ExecuteRequest(
                problem=problem, candidate=_candidate(0, "  return x + 1;\n}\n")
            ),
            timeout=120,
        )
        for _ in range(2)
    )
    assert first.status == second.status == domain_pb2.PASSED
    assert second.compile_time_ms == 0 < first.compile_time_ms
    assert settings.execution.cache_dir is not None
    assert any((settings.execution.cache_dir / "build" / "cpp").iterdir())


JAVA = domain_pb2.Problem(
    problem_id="inc-java",
    language="java",
    prompt="class Problem {\n    public static int inc(int x) {\n",
    tests=(
        "    }\n    public static void main(String[] args) {\n"
        "        assert inc(1) == 2;\n    }\n}\n"
    ),
)


def test_a_java_batch_compiles_in_one_worker_task_then_fans_out(
    stub: services_pb2_grpc.ExecutionStub, settings: Settings
) -> None:
    ok, why = get_language("java").available()
    if not ok:
        pytest.skip(f"java is not available here: {why}")
    completions = ["        return x + 1;\n", "        return x;\n", "        return x +;\n"] * 2
    response = stub.ExecuteBatch(
        services_pb2.ExecuteBatchRequest(
            problem=JAVA, candidates=[_candidate(i, c) for i, c in enumerate(completions)]
        ),
        timeout=300,
    )
    expected = [domain_pb2.PASSED, domain_pb2.FAILED, domain_pb2.COMPILE_ERROR] * 2
    assert [r.status for r in response.results] == expected
    # the worker built the batch helper (the precompile task ran there) ...
    assert list((settings.execution.cache_dir / "helpers" / "java").iterdir())
    # ... and every distinct program's compile is reported once, by one of its runs
    for completion in set(completions):
        timed = [
            r.compile_time_ms > 0
            for c, r in zip(completions, response.results, strict=True)
            if c == completion
        ]
        assert sorted(timed) == [False, True], completion
