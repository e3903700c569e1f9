"""The Generation gRPC service over a tiny model: Generate, GenerateStream, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from codejury.core.grpc import make_server
from codejury.core.settings import GenerationSettings
from codejury.generation.factory import make_generator
from codejury.generation.service import GenerationServicer, register
from codejury.proto.v1 import domain_pb2, services_pb2, services_pb2_grpc

PROBLEMS = [
    domain_pb2.Problem(
        problem_id="add", language="python", prompt="def add(a, b):\n", stop_sequences=["e", "t"]
    ),
    domain_pb2.Problem(problem_id="inc", language="cpp", prompt="long inc(long x) {\n"),
]
SAMPLING = domain_pb2.SamplingParams(temperature=1.0, max_new_tokens=16, seed=3)


@pytest.fixture(scope="module")
def stub(tiny_model_dir: Path) -> Iterator[services_pb2_grpc.GenerationStub]:
    settings = GenerationSettings(  # type: ignore[call-arg]
        model=str(tiny_model_dir), prompt_style="completion", max_n=8
    )
    servicer = GenerationServicer(make_generator(settings))
    served = make_server([register(servicer)], host="127.0.0.1", port=0, max_workers=4)
    served.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{served.port}")
    try:
        yield services_pb2_grpc.GenerationStub(channel)
    finally:
        channel.close()
        served.stop(5)


def test_generate_returns_n_per_problem_grouped_in_request_order(
    stub: services_pb2_grpc.GenerationStub,
) -> None:
    response = stub.Generate(
        services_pb2.GenerateRequest(problems=PROBLEMS, n=4, sampling=SAMPLING), timeout=120
    )
    candidates = list(response.candidates)
    assert [(c.problem_id, c.index) for c in candidates] == [
        (p, i) for p in ("add", "inc") for i in range(4)
    ]
    assert len({c.candidate_id for c in candidates}) == 8
    for candidate in candidates[:4]:
        assert "e" not in candidate.completion and "t" not in candidate.completion
    assert all("\n}" not in c.completion for c in candidates[4:])  # cpp's default stop
    assert {c.model_name for c in candidates} == {"tiny-chat-lm"}
    assert all(c.sampling.seed == 3 and c.completion_tokens > 0 for c in candidates)
    assert all(c.logprob_sum < 0 and c.finish_reason for c in candidates)
    # Every candidate's record, as the wire carries it: the model's revision (a fingerprint
    # of the local weights), the sampling actually used (request values over the defaults),
    # token counts and the log-probability's sum and mean.
    assert len({c.model_revision for c in candidates}) == 1
    assert candidates[0].model_revision.startswith("fp-")
    for candidate in candidates:
        sampling = candidate.sampling
        assert (sampling.temperature, sampling.max_new_tokens, sampling.greedy) == (1.0, 16, False)
        assert sampling.top_p == pytest.approx(0.95)  # the deployment's default
        assert candidate.prompt_tokens > 0 and candidate.completion_tokens <= 16
        assert candidate.logprob_mean == pytest.approx(
            candidate.logprob_sum / candidate.completion_tokens
        )
        assert candidate.source == domain_pb2.CANDIDATE_SOURCE_GENERATOR
    again = stub.Generate(
        services_pb2.GenerateRequest(problems=PROBLEMS, n=4, sampling=SAMPLING), timeout=120
    )
    assert [c.completion for c in again.candidates] == [c.completion for c in candidates]


def test_the_stream_sends_the_same_candidates_one_by_one(
    stub: services_pb2_grpc.GenerationStub,
) -> None:
    request = services_pb2.GenerateRequest(problems=PROBLEMS, n=3, sampling=SAMPLING)
    streamed = list(stub.GenerateStream(request, timeout=120))
    whole = stub.Generate(request, timeout=120).candidates
    key = lambda c: (c.problem_id, c.index)  # noqa: E731
    assert sorted(map(key, streamed)) == sorted(map(key, whole))
    assert {key(c): c.completion for c in streamed} == {key(c): c.completion for c in whole}


@pytest.mark.parametrize(
    ("problems", "n", "message"),
    [
        (PROBLEMS, 0, "n must be >= 1, got 0"),
        (PROBLEMS, 9, "n is 9, over the limit of 8"),
        ([domain_pb2.Problem(language="python", prompt="")], 1, "problems[0].prompt is empty"),
        (
            [domain_pb2.Problem(language="cobol", prompt="x")],
            1,
            "problems[0].language: unknown language 'cobol'",
        ),
        (
            [domain_pb2.Problem(language="python", prompt="x = 1\n" * 300)],
            1,
            "which leaves no room in the model's context of 256 tokens",
        ),
    ],
    ids=["n-zero", "n-over-max", "empty-prompt", "unknown-language", "prompt-over-context"],
)
@pytest.mark.parametrize("method", ["Generate", "GenerateStream"])
def test_bad_requests_are_invalid_argument_and_the_server_keeps_serving(
    stub: services_pb2_grpc.GenerationStub,
    method: str,
    problems: list[domain_pb2.Problem],
    n: int,
    message: str,
) -> None:
    request = services_pb2.GenerateRequest(problems=problems, n=n, sampling=SAMPLING)
    with pytest.raises(grpc.RpcError) as info:
        answer = getattr(stub, method)(request, timeout=60)
        if method == "GenerateStream":
            list(answer)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()
    ok = stub.Generate(
        services_pb2.GenerateRequest(problems=PROBLEMS[:1], n=1, sampling=SAMPLING), timeout=60
    )
    assert len(ok.candidates) == 1
