"""What a caller hears when a stage gives up on its request: our own errors as written,
a retryable one as UNAVAILABLE, and a fault of ours without its internals."""

from __future__ import annotations

import json

from codejury.bus.envelope import Event, wrap
from codejury.bus.replies import INTERNAL, INVALID, UNAVAILABLE, solve_failed
from codejury.core.errors import InvalidArgumentError, TemporaryError
from codejury.proto.v1 import domain_pb2, events_pb2


def _event() -> Event:
    payload = events_pb2.CandidatesGenerated(
        request_id="r-1", problem=domain_pb2.Problem(problem_id="p", language="python")
    )
    envelope = wrap(payload, producer="test", trace_id="a" * 32)
    return Event("codejury.candidates.generated", 0, 7, b"r-1", envelope, payload)


def _reply(error: BaseException) -> events_pb2.SolveCompleted:
    (out,) = solve_failed(_event(), error)
    assert isinstance(out.payload, events_pb2.SolveCompleted)
    assert out.payload.request_id == "r-1" and out.key == "r-1"
    return out.payload


def test_our_own_errors_reach_the_caller_as_written() -> None:
    reply = _reply(InvalidArgumentError("candidates[0]: 2 MB, over the 1 MB allowed"))
    assert reply.error_kind == INVALID
    assert reply.error.endswith("candidates[0]: 2 MB, over the 1 MB allowed")


def test_a_retryable_error_says_so() -> None:
    reply = _reply(TemporaryError("no sandbox worker returned 8 results within 40s"))
    assert reply.error_kind == UNAVAILABLE and "within 40s" in reply.error


def test_a_fault_of_ours_names_the_stage_and_the_trace_not_the_internals() -> None:
    try:
        json.loads('{"stdout": "unterminated')
    except ValueError as exc:
        reply = _reply(exc)
    assert reply.error_kind == INTERNAL
    assert "codejury.candidates.generated" in reply.error and "a" * 32 in reply.error
    assert "Unterminated" not in reply.error and "JSONDecodeError" in reply.error
