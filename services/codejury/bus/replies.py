"""The answer a pipeline stage publishes when it gives up on a solve request.

A request that a stage dead-letters would otherwise leave its caller waiting until the
Solve deadline. Passed as ``EventConsumer(on_dead_letter=solve_failed)``, this publishes a
``SolveCompleted`` with ``error`` set, which the front door turns into a failed RPC.
"""

from __future__ import annotations

from collections.abc import Iterable

from codejury.bus.envelope import Event, Outgoing
from codejury.bus.topics import SOLVE_COMPLETED
from codejury.proto.v1 import events_pb2

_REQUESTS = (
    events_pb2.SolveRequested,
    events_pb2.CandidatesGenerated,
    events_pb2.CandidatesExecuted,
)


def solve_failed(event: Event, error: BaseException) -> Iterable[Outgoing]:
    payload = event.payload
    if not isinstance(payload, _REQUESTS) or not payload.request_id:
        return []  # not a request anyone waits on
    completed = events_pb2.SolveCompleted(
        request_id=payload.request_id,
        problem=payload.problem,
        error=f"{event.topic} could not be handled: {error}",
    )
    return [Outgoing(SOLVE_COMPLETED, completed, key=payload.request_id)]
