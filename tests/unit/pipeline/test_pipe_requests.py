"""Solve request validation, deadlines, replies, and completion matching (pure parts)."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from codejury.bus.producer import check_fits
from codejury.core.grpc import status_for
from codejury.core.settings import load_settings
from codejury.execution.stage import EVENT_BUDGET_BYTES, fit_outputs
from codejury.pipeline.completions import PendingCompletions
from codejury.pipeline.errors import (
    InvalidSolveRequestError,
    SolveDeadlineError,
    TooManyRequestsError,
)
from codejury.pipeline.requests import (
    BYTES_PER_TOKEN,
    CANDIDATE_OVERHEAD_BYTES,
    MAX_ID_CHARS,
    REQUEST_OVERHEAD_BYTES,
    SolveLimits,
    check_solve_request,
    deadline_of,
    problem_room,
    response_of,
)
from codejury.proto.v1 import domain_pb2, events_pb2, services_pb2

LIMITS = SolveLimits(
    max_n=16,
    max_prompt_bytes=1000,
    default_deadline_s=60,
    max_deadline_s=600,
    max_program_bytes=1 << 20,
    max_new_tokens=384,
    max_new_tokens_limit=2048,
)


def request(**fields: object) -> services_pb2.SolveRequest:
    base = services_pb2.SolveRequest(
        problem=domain_pb2.Problem(language="python", prompt="def f():\n"), n=4
    )
    for name, value in fields.items():
        if name in ("problem", "sampling"):
            getattr(base, name).CopyFrom(value)
        else:
            setattr(base, name, value)
    return base


def test_a_good_request_passes() -> None:
    check_solve_request(request(), LIMITS)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (services_pb2.SolveRequest(n=2), "problem: missing"),
        (
            request(problem=domain_pb2.Problem(language="python", prompt="  ")),
            "problem.prompt: empty",
        ),
        (
            request(problem=domain_pb2.Problem(language="python", prompt="x" * 1001)),
            r"problem.prompt: 1,001 bytes, over the limit of 1,000 \(reranking.max_prompt_kb\)",
        ),
        (  # bytes, as Kafka counts them: 600 characters of two bytes each
            request(problem=domain_pb2.Problem(language="python", prompt="é" * 600)),
            "problem.prompt: 1,200 bytes",
        ),
        (request(request_id="r" * 129), "request_id: 129 characters, over the limit of 128"),
        (
            request(
                problem=domain_pb2.Problem(language="python", prompt="x", problem_id="p" * 129)
            ),
            "problem.problem_id: 129 characters",
        ),
        (
            request(
                problem=domain_pb2.Problem(
                    language="python", prompt="x", stop_sequences=["\ndef"] * 17
                )
            ),
            "problem.stop_sequences: 17 of them, over the limit of 16",
        ),
        (
            request(
                problem=domain_pb2.Problem(
                    language="python", prompt="x", stop_sequences=["\n", "#" * 257]
                )
            ),
            r"problem.stop_sequences\[1\]: 257 bytes",
        ),
        (
            request(
                problem=domain_pb2.Problem(language="python", prompt="x", tests="#" * (2 << 20))
            ),
            r"problem.tests: 2,097,152 bytes make the problem 2,097,\d+, over the .* n=4 "
            r"candidates of up to 384 new tokens .*: shorten problem.tests, or ask for fewer",
        ),
        (
            request(
                problem=domain_pb2.Problem(
                    language="python", prompt="x", tests="assert f()", declaration="#" * (1 << 20)
                )
            ),
            "problem.declaration: 1,048,576 bytes make the problem",
        ),
        (
            request(sampling=domain_pb2.SamplingParams(max_new_tokens=2049)),
            r"sampling.max_new_tokens: 2049 is out of range; give 0 \(the default, 384\) up to "
            r"2048 \(generation.max_new_tokens_limit\)",
        ),
        (request(problem=domain_pb2.Problem(prompt="def f():")), "problem.language: empty"),
        (
            request(problem=domain_pb2.Problem(language="cobol", prompt="x")),
            "problem.language: .*cobol",
        ),
        (request(n=0), "n: 0 is out of range; ask for 1 to 16"),
        (request(n=17), "n: 17 is out of range"),
        (request(deadline_s=-1.0), "deadline_s: -1 is out of range"),
        (request(deadline_s=601.0), "deadline_s: 601 is out of range"),
        (request(selection=7), "selection: 7 is not a Selection; give SELECTION_UNSPECIFIED"),
    ],
)
def test_bad_requests_name_the_field(bad: services_pb2.SolveRequest, field: str) -> None:
    with pytest.raises(InvalidSolveRequestError, match=field) as caught:
        check_solve_request(bad, LIMITS)
    assert status_for(caught.value).name == "INVALID_ARGUMENT"


def test_the_room_for_the_problem_shrinks_with_n_and_new_tokens() -> None:
    """What a Kafka record leaves the problem depends on what the candidates will take:
    tests that fit beside one short candidate are refused beside sixteen long ones."""
    tests = "#" * 900_000
    few = request(problem=domain_pb2.Problem(language="python", prompt="x", tests=tests), n=1)
    check_solve_request(few, LIMITS)
    many = request(
        problem=domain_pb2.Problem(language="python", prompt="x", tests=tests),
        n=16,
        sampling=domain_pb2.SamplingParams(max_new_tokens=2048),
    )
    with pytest.raises(
        InvalidSolveRequestError, match=r"problem.tests: 900,000 bytes .* n=16 .* 2048 new tokens"
    ):
        check_solve_request(many, LIMITS)
    assert problem_room(16, 2048) < problem_room(1, 384) < EVENT_BUDGET_BYTES


def test_tests_that_would_make_a_program_over_the_sandbox_s_limit_are_refused_up_front() -> None:
    small_programs = replace(LIMITS, max_program_bytes=64 << 10)
    problem = domain_pb2.Problem(language="python", prompt="def f():\n", tests="#" * (70 << 10))
    with pytest.raises(
        InvalidSolveRequestError,
        match=r"problem.tests: 71,680 bytes make the program .* \(execution.max_program_kb\)",
    ):
        check_solve_request(request(problem=problem), small_programs)
    problem.tests = ""  # without tests nothing runs: only the record's room counts
    problem.declaration = "#" * (70 << 10)
    check_solve_request(request(problem=problem), small_programs)


def test_the_prompt_limit_is_the_lower_of_the_reranker_s_and_the_sandbox_s() -> None:
    defaults = SolveLimits.from_settings(load_settings())
    assert defaults.prompt_setting == "reranking.max_prompt_kb"
    assert defaults.max_prompt_bytes == 256 << 10
    small = SolveLimits.from_settings(load_settings({"execution": {"max_program_kb": 128}}))
    assert (small.prompt_setting, small.max_prompt_bytes) == ("execution.max_program_kb", 128 << 10)


def _largest_problem(room: int) -> domain_pb2.Problem:
    """A problem of exactly ``room`` bytes, most of them tests."""
    problem = domain_pb2.Problem(
        problem_id="p" * MAX_ID_CHARS,
        language="python",
        prompt="def f(x):\n    ",
        stop_sequences=["\ndef ", "\nclass ", "\nif ", "\n#"],
        dataset="user",
        entry_point="f",
    )
    problem.tests = "#" * (room - problem.ByteSize() - 4)  # its tag and a 3-byte length
    while problem.ByteSize() < room:
        problem.tests += "#"
    assert problem.ByteSize() == room
    return problem


@pytest.mark.parametrize(("n", "max_new_tokens"), [(1, 384), (8, 384), (64, 384), (64, 2048)])
def test_the_largest_problem_accepted_fits_every_event_of_its_request(
    n: int, max_new_tokens: int
) -> None:
    """The limit is consistent with Kafka's record: with the largest problem the front door
    accepts, n candidates of the estimated size (the longest ids, a long model name), and
    results whose tests printed 60 KB each (trimmed by the execution stage as it does), every
    event of the request fits one record; one byte more is refused up front."""
    room = problem_room(n, max_new_tokens)
    problem = _largest_problem(room)
    sampling = domain_pb2.SamplingParams(max_new_tokens=max_new_tokens, seed=2**62)
    solve = services_pb2.SolveRequest(
        request_id="r" * MAX_ID_CHARS, problem=problem, n=n, sampling=sampling
    )
    limits = replace(LIMITS, max_n=64, max_prompt_bytes=256 << 10)
    check_solve_request(solve, limits)
    request_id = solve.request_id
    candidates = [
        domain_pb2.Candidate(
            candidate_id=f"{request_id}-0-{i}",  # the generator's form
            problem_id=problem.problem_id,
            index=i,
            completion="x" * (max_new_tokens * BYTES_PER_TOKEN),
            model_name="deepseek-ai/deepseek-coder-6.7b-instruct/deepseek-coder-6.7b.Q4_K_M.gguf",
            model_revision="f" * 64,
            sampling=sampling,
            prompt_tokens=2**30,
            completion_tokens=max_new_tokens,
            logprob_sum=-1.5,
            logprob_mean=-0.1,
            source=domain_pb2.CANDIDATE_SOURCE_GENERATOR,
            finish_reason="length",
        )
        for i in range(n)
    ]
    results = [
        domain_pb2.ExecutionResult(
            candidate_id=c.candidate_id,
            status=domain_pb2.FAILED,
            exit_code=1,
            wall_time_ms=1234.5,
            cpu_time_ms=1000.25,
            compile_time_ms=12.5,
            max_memory_bytes=2**33,
            stdout="o" * 60_000,
            stderr="e" * 60_000,
            detail="a test assertion failed (exit code 1)",
        )
        for c in candidates
    ]
    scores = [
        domain_pb2.Score(
            candidate_id=c.candidate_id,
            score=0.123456789,
            model_name="reranker",
            model_version="v" * MAX_ID_CHARS,
        )
        for c in candidates
    ]
    selection = domain_pb2.SELECTION_EXECUTION_FIRST
    executed = events_pb2.CandidatesExecuted(
        request_id=request_id,
        problem=problem,
        candidates=candidates,
        results=results,
        selection=selection,
    )
    fit_outputs(executed, EVENT_BUDGET_BYTES)
    events = [
        events_pb2.SolveRequested(
            request_id=request_id, problem=problem, n=n, sampling=sampling, selection=selection
        ),
        events_pb2.CandidatesGenerated(
            request_id=request_id, problem=problem, candidates=candidates, selection=selection
        ),
        executed,
        events_pb2.SolveCompleted(
            request_id=request_id,
            problem=problem,
            candidates=candidates,
            results=executed.results,
            scores=scores,
            chosen_index=n - 1,
            reranker_version="v" * MAX_ID_CHARS,
            selection=selection,
        ),
    ]
    for event in events:
        check_fits("topic", event)  # RecordTooLargeError if not
    # what the request and its candidates hold besides the problem and the completions is
    # over-counted, never under
    bare = events[-1].ByteSize() - problem.ByteSize() - n * max_new_tokens * BYTES_PER_TOKEN
    bare -= sum(len(r.stdout) + len(r.stderr) for r in executed.results)
    assert bare < REQUEST_OVERHEAD_BYTES + n * CANDIDATE_OVERHEAD_BYTES
    problem.tests += "#"
    solve.problem.CopyFrom(problem)
    with pytest.raises(InvalidSolveRequestError, match=r"problem.tests: .* over the"):
        check_solve_request(solve, limits)


def test_errors_map_to_their_status_codes() -> None:
    assert status_for(TooManyRequestsError("x")).name == "RESOURCE_EXHAUSTED"
    assert status_for(SolveDeadlineError("x")).name == "DEADLINE_EXCEEDED"


def test_deadline_is_the_request_s_the_default_or_the_rpc_s_whichever_is_first() -> None:
    assert deadline_of(request(deadline_s=30.0), LIMITS, None) == 30.0
    assert deadline_of(request(), LIMITS, None) == 60.0
    assert deadline_of(request(deadline_s=30.0), LIMITS, 5.0) == 5.0
    assert deadline_of(request(), LIMITS, -1.0) == 0.0


def test_the_reply_names_the_chosen_candidate() -> None:
    candidates = [domain_pb2.Candidate(candidate_id=f"c{i}") for i in range(3)]
    completed = events_pb2.SolveCompleted(
        request_id="r",
        candidates=candidates,
        chosen_index=2,
        reranker_version="v7",
        selection=domain_pb2.SELECTION_EXECUTION_FIRST,
    )
    reply = response_of(completed)
    assert reply.chosen.candidate_id == "c2" and reply.reranker_version == "v7"
    assert reply.selection == domain_pb2.SELECTION_EXECUTION_FIRST
    assert len(reply.candidates) == 3
    completed.chosen_index = 5  # out of range: no chosen candidate rather than a wrong one
    assert not response_of(completed).HasField("chosen")


def test_completions_reach_their_waiter_once_and_strangers_are_counted() -> None:
    pending = PendingCompletions()
    waiter = pending.register("r1")
    with pytest.raises(KeyError):
        pending.register("r1")
    first = events_pb2.SolveCompleted(request_id="r1", reranker_version="a")
    again = events_pb2.SolveCompleted(request_id="r1", reranker_version="b")
    threading.Timer(0.05, pending.deliver, [first]).start()
    assert waiter.wait(5.0) == first
    assert pending.deliver(again)  # a redelivery: still matched, but changes nothing
    assert waiter.wait(0.0) == first
    assert not pending.deliver(events_pb2.SolveCompleted(request_id="someone-else"))
    assert pending.unmatched == 1
    pending.discard("r1")
    assert len(pending) == 0 and not pending.deliver(first)


def test_a_waiter_without_a_completion_times_out_empty() -> None:
    assert PendingCompletions().register("r").wait(0.01) is None
