"""The Kafka stage: ``codejury.candidates.generated`` -> ``codejury.candidates.executed``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from codejury.bus.envelope import Event, Outgoing
from codejury.bus.topics import CANDIDATES_EXECUTED
from codejury.core.errors import PermanentError
from codejury.execution.backends import ExecutionBackend
from codejury.execution.requests import check_candidates, check_language
from codejury.execution.sandbox import Limits
from codejury.proto.v1 import events_pb2


class UnexpectedEventError(PermanentError):
    """The topic carried an event of the wrong type."""


def make_handler(
    backend: ExecutionBackend, limits: Limits, *, max_batch: int, max_program_bytes: int
) -> Callable[[Event], Iterable[Outgoing]]:
    """Executes a request's candidates when its problem has tests; passes it on otherwise.

    Invalid requests raise a PermanentError (-> dead-letter topic); workers that do not
    answer raise a TemporaryError (-> retried with backoff).
    """

    def handle(event: Event) -> Iterable[Outgoing]:
        generated = event.payload
        if not isinstance(generated, events_pb2.CandidatesGenerated):
            raise UnexpectedEventError(
                f"expected CandidatesGenerated, got {generated.DESCRIPTOR.full_name}"
            )
        executed = events_pb2.CandidatesExecuted(
            request_id=generated.request_id,
            problem=generated.problem,
            candidates=generated.candidates,
        )
        if generated.problem.tests.strip() and generated.candidates:
            check_language(generated.problem)
            check_candidates(
                generated.problem,
                generated.candidates,
                max_batch=max_batch,
                max_program_bytes=max_program_bytes,
            )
            executed.results.extend(
                backend.execute_batch(generated.problem, generated.candidates, limits)
            )
        return [Outgoing(CANDIDATES_EXECUTED, executed, key=generated.request_id)]

    return handle
