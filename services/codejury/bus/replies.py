"""The answer a pipeline stage publishes when it gives up on a solve request.

A request that a stage dead-letters would otherwise leave its caller waiting until the
Solve deadline. Passed as ``EventConsumer(on_dead_letter=solve_failed)``, this publishes a
``SolveCompleted`` with ``error`` set, which the front door turns into a failed RPC.
"""

from __future__ import annotations

from collections.abc import Iterable

from codejury.bus.envelope import Event, Outgoing
from codejury.bus.topics import SOLVE_COMPLETED
from codejury.core.errors import CodeJuryError, TemporaryError
from codejury.proto.v1 import events_pb2

_REQUESTS = (
    events_pb2.SolveRequested,
    events_pb2.CandidatesGenerated,
    events_pb2.CandidatesExecuted,
)


INVALID, UNAVAILABLE, INTERNAL = "invalid", "unavailable", "internal"


def solve_failed(event: Event, error: BaseException) -> Iterable[Outgoing]:
    payload = event.payload
    if not isinstance(payload, _REQUESTS) or not payload.request_id:
        return []  # not a request anyone waits on
    kind, message = caller_error(event, error)
    completed = events_pb2.SolveCompleted(
        request_id=payload.request_id,
        problem=payload.problem,
        error=message,
        error_kind=kind,
    )
    return [Outgoing(SOLVE_COMPLETED, completed, key=payload.request_id)]


def caller_error(event: Event, error: BaseException) -> tuple[str, str]:
    """What the caller is told, and how it should retry. Our own errors were written for
    the caller (the field, the fix); anything else is a fault of ours whose text may carry
    internals (paths, parser states), so the caller gets the stage and the trace id to
    find it in the stage's log, not the text."""
    if isinstance(error, TemporaryError):
        return UNAVAILABLE, f"{event.topic} could not be handled now: {error}"
    if isinstance(error, CodeJuryError):
        return INVALID, f"{event.topic} could not be handled: {error}"
    return INTERNAL, (
        f"{event.topic} could not be handled: an internal error "
        f"({type(error).__name__}); its log has it under trace id {event.trace_id}"
    )
