"""Solve request validation, deadlines, replies, and completion matching (pure parts)."""

from __future__ import annotations

import threading

import pytest
from codejury.core.grpc import status_for
from codejury.pipeline.completions import PendingCompletions
from codejury.pipeline.errors import (
    InvalidSolveRequestError,
    SolveDeadlineError,
    TooManyRequestsError,
)
from codejury.pipeline.requests import SolveLimits, check_solve_request, deadline_of, response_of
from codejury.proto.v1 import domain_pb2, events_pb2, services_pb2

LIMITS = SolveLimits(max_n=16, max_prompt_chars=1000, default_deadline_s=60, max_deadline_s=600)


def request(**fields: object) -> services_pb2.SolveRequest:
    base = services_pb2.SolveRequest(
        problem=domain_pb2.Problem(language="python", prompt="def f():\n"), n=4
    )
    for name, value in fields.items():
        if name == "problem":
            base.problem.CopyFrom(value)  # type: ignore[arg-type]
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
            "problem.prompt: 1001",
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
